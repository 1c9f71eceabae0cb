"""Every model x loss x data composes; bad values fail before any work with one line."""

import itertools

import pytest
from conftest import CONF, compose_config
from hydra.errors import ConfigCompositionException

from ganlab.config import validate
from ganlab.errors import GanlabError

MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
LOSSES = sorted(p.stem for p in (CONF / "loss").glob("*.yaml"))
DATA = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))
POINTS = {"ring8", "grid25"}


def test_the_design_options_exist():
    assert {"mlp", "dcgan"} <= set(MODELS)
    assert {"minimax", "nonsaturating", "lsgan", "hinge", "wgan", "wgan_gp"} <= set(LOSSES)
    assert {
        "ring8",
        "grid25",
        "digits",
        "mnist",
        "fashion_mnist",
        "cifar10",
        "image_folder",
    } <= set(DATA)


@pytest.mark.parametrize("model,loss,data", list(itertools.product(MODELS, LOSSES, DATA)))
def test_every_combination_composes(tmp_path, model, loss, data):
    extra = ["data.path=/some/dir"] if data == "image_folder" else []
    cfg = compose_config(
        tmp_path, [f"model={model}", f"loss={loss}", f"data={data}", *extra], tiny=False
    )
    shape = list(cfg.data.shape)
    assert len(shape) == (1 if data in POINTS else 3)
    assert cfg.loss._target_.startswith("ganlab.losses.")
    assert cfg.n_critic == (5 if loss in ("wgan", "wgan_gp") else 1)
    if (model == "cyclegan") != (data == "unpaired"):  # translation needs two domains
        with pytest.raises(GanlabError, match="two image domains"):
            validate(cfg)
    elif model == "cyclegan" and cfg.n_critic != 1:  # one D update per G update
        with pytest.raises(GanlabError, match="n_critic=5 is not allowed"):
            validate(cfg)
    elif model != "mlp" and data in POINTS:  # the convnets need images
        with pytest.raises(GanlabError, match="needs image data"):
            validate(cfg)
    else:
        validate(cfg)


def test_loss_recipes_set_their_optimizers(tmp_path):
    wgan = compose_config(tmp_path, ["loss=wgan"])
    assert wgan.optimizer.generator._target_ == "torch.optim.RMSprop"
    assert wgan.optimizer.discriminator.lr == 5e-5
    assert wgan.loss.clip == 0.01
    gp = compose_config(tmp_path, ["loss=wgan_gp"])
    assert gp.optimizer.generator._target_ == "torch.optim.Adam"
    assert list(gp.optimizer.discriminator.betas) == [0.0, 0.9]
    assert gp.optimizer.generator.lr == 1e-4 and gp.loss.gp_weight == 10.0
    default = compose_config(tmp_path, [])
    assert default.optimizer.generator.lr == 2e-4
    assert list(default.optimizer.generator.betas) == [0.5, 0.999]
    # The command line wins over a loss recipe.
    assert compose_config(tmp_path, ["loss=wgan", "n_critic=2"]).n_critic == 2
    assert compose_config(
        tmp_path, ["loss=wgan", "optimizer=adam"]
    ).optimizer.generator._target_ == ("torch.optim.Adam")


@pytest.mark.parametrize(
    "override,message",
    [
        ("n_critic=0", "n_critic=0 is not allowed"),
        ("trainer.max_steps=-3", "trainer.max_steps=-3"),
        ("data.batch_size=0", "data.batch_size=0"),
        ("model.latent_dim=0", "model.latent_dim=0"),
        ("optimizer.generator.lr=0", "optimizer.generator.lr=0"),
        ("optimizer.discriminator.lr=-1e-4", "optimizer.discriminator.lr=-0.0001"),
        ("optimizer.generator.betas=[0.5,1.0]", "optimizer.generator.betas"),
        ("n_critic=2.5", "n_critic=2.5"),
    ],
)
def test_bad_values_give_one_line(tmp_path, override, message):
    cfg = compose_config(tmp_path, [override])
    with pytest.raises(GanlabError, match=message.replace("[", r"\[").replace(".", r"\.")) as err:
        validate(cfg)
    assert "\n" not in str(err.value)


def test_unknown_option_names_the_valid_ones(tmp_path):
    with pytest.raises(ConfigCompositionException, match="wgan_gp"):
        compose_config(tmp_path, ["loss=wgangp"])


EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_recipe_composes_and_builds(tmp_path, name):
    from ganlab.train import build_module

    cfg = compose_config(tmp_path, [f"experiment={name}"], tiny=False)
    validate(cfg)
    module = build_module(cfg)
    assert module.n_critic == cfg.n_critic
    text = (CONF / "experiment" / f"{name}.yaml").read_text()
    assert "et al." in text or "(" in text.splitlines()[1]  # each recipe cites its source
