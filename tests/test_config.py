"""Every model x loss x data composes and every combination that can work builds; those that
cannot, and bad values, fail before any work with one line naming the key."""

import pytest
import torch
from conftest import CONF, compose_config
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from ganlab.build import assemble
from ganlab.errors import GanlabError

MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
LOSSES = sorted(p.stem for p in (CONF / "loss").glob("*.yaml"))
DATA = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))
POINTS = {"ring8", "grid25"}


def test_the_design_options_exist():
    assert {"mlp", "dcgan", "sngan", "stylegan", "cyclegan"} <= set(MODELS)
    assert {"minimax", "nonsaturating", "lsgan", "hinge", "wgan", "wgan_gp"} <= set(LOSSES)
    assert {"ring8", "grid25", "digits", "mnist", "fashion_mnist", "cifar10",
            "image_folder"} <= set(DATA)


def _expected_error(model: str, loss: str, data: str) -> str | None:
    if data == "prepared":  # a prepared set is a path the user names (tests/test_prepared_data.py)
        return "data.path is required but not set"
    if model != "mlp" and data in POINTS:  # the convnets need images
        return "takes data.channels, which this config does not have"
    if model == "cyclegan" and loss in ("wgan", "wgan_gp"):  # checked as CycleGAN is built
        return "n_critic=5 is not allowed"
    if model == "cyclegan" and loss == "progan":  # WGAN-GP's penalty, with ProGAN's n_critic 1
        return "penalties \\(gradient_penalty\\) are not supported by CycleGAN"
    if model == "cyclegan" and data != "unpaired":
        return "two image domains"
    if model != "cyclegan" and data == "unpaired":
        return "image domains for a translation model"
    return None


# Each model with each data set and each loss with each model: every pairing is composed and
# built once (slow: ~1 s each); the fast suite builds each model and each loss once.
PAIRS = sorted({(m, "nonsaturating", d) for m in MODELS for d in DATA}
               | {(m, loss, "digits") for m in MODELS for loss in LOSSES})
FAST = sorted({(m, "nonsaturating", "unpaired" if m == "cyclegan" else "digits") for m in MODELS}
              | {("dcgan", loss, "digits") for loss in LOSSES} | {("mlp", "hinge", "ring8")})
PAIRINGS = [pytest.param(*p, marks=() if p in FAST else pytest.mark.slow)
            for p in sorted(set(PAIRS) | set(FAST))]


@pytest.mark.parametrize("model,loss,data", PAIRINGS)
def test_every_pairing_builds_or_says_why_not(tmp_path, model, loss, data):
    extra = ["data.path=/some/dir"] if data == "image_folder" else []
    cfg = compose_config(tmp_path, [f"model={model}", f"loss={loss}", f"data={data}", *extra,
                                    "model.generator.width=8", "model.discriminator.width=8"]
                         if model in ("dcgan", "sngan", "cyclegan") else
                         [f"model={model}", f"loss={loss}", f"data={data}", *extra], tiny=False)
    message = _expected_error(model, loss, data)
    if message is None:
        run = assemble(cfg)
        assert run.module.schedule.n_critic == run.datamodule.batches_per_step
        assert cfg.n_critic == (5 if loss in ("wgan", "wgan_gp") else 1)
    else:
        with pytest.raises(GanlabError, match=message) as err:
            assemble(cfg)
        assert "\n" not in str(err.value)


def _optimizer(cfg, name="generator"):
    return instantiate(cfg.optimizer[name])([torch.nn.Parameter(torch.zeros(1))])


def test_losses_and_models_recommend_their_optimizer(tmp_path):
    wgan = _optimizer(compose_config(tmp_path, ["loss=wgan"]), "discriminator")
    assert isinstance(wgan, torch.optim.RMSprop) and wgan.param_groups[0]["lr"] == 5e-5
    gp = _optimizer(compose_config(tmp_path, ["loss=wgan_gp"]))
    assert isinstance(gp, torch.optim.Adam)
    assert gp.param_groups[0]["lr"] == 1e-4 and list(gp.param_groups[0]["betas"]) == [0.0, 0.9]
    default = _optimizer(compose_config(tmp_path, []))
    assert default.param_groups[0]["lr"] == 2e-4
    assert list(default.param_groups[0]["betas"]) == [0.5, 0.999]
    style = _optimizer(compose_config(tmp_path, ["model=stylegan"]))
    assert style.param_groups[0]["lr"] == 0.0025
    assert list(style.param_groups[0]["betas"]) == [0.0, 0.99]
    # A loss's recommendation comes before the model's; the command line wins over both.
    assert _optimizer(compose_config(tmp_path, ["model=stylegan", "loss=wgan_gp"])
                      ).param_groups[0]["lr"] == 1e-4
    assert compose_config(tmp_path, ["loss=wgan", "n_critic=2"]).n_critic == 2
    assert isinstance(_optimizer(compose_config(tmp_path, ["loss=wgan", "optimizer=adam"])),
                      torch.optim.Adam)
    assert _optimizer(compose_config(tmp_path, ["loss=wgan_gp", "optimizer.generator.lr=3e-4"])
                      ).param_groups[0]["lr"] == 3e-4


@pytest.mark.parametrize(
    "override,message",
    [
        ("n_critic=0", "n_critic=0 is not allowed: it must be an integer >= 1"),
        ("trainer.max_steps=-3", "trainer.max_steps=-3 is not allowed"),
        ("data.batch_size=0", "data.batch_size=0 is not allowed"),
        ("model.latent_dim=0", "model.latent_dim=0 is not allowed"),
        ("model.generator.width=0", "model.generator.width=0 is not allowed"),
        ("optimizer.discriminator.lr=-1e-4", "optimizer.discriminator: Invalid learning rate"),
        ("optimizer.generator.betas=[0.5,1.0]", "optimizer.generator: Invalid beta parameter"),
        ("ema.half_life_kimg=-1", "ema.half_life_kimg=-1.0 is not allowed"),
        ("on_nonfinite=maybe", "on_nonfinite='maybe' is not allowed: it must be one of stop"),
        ("evaluation.kid_subset_size=5000", "evaluation.kid_subset_size=5000 is larger"),
    ],
)
def test_bad_values_give_one_line_naming_the_key_the_user_sets(tmp_path, override, message):
    cfg = compose_config(tmp_path, [override])
    with pytest.raises(GanlabError) as err:
        assemble(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("override", ["n_critic=2.5", "seed=abc", "model.latent_dim=ten",
                                      "pack=two", "model.compile=maybe"])
def test_wrong_types_fail_when_hydra_composes(tmp_path, override):
    key = override.split("=")[0]
    with pytest.raises(ConfigCompositionException, match=f"override {key}"):
        compose_config(tmp_path, [override])


def test_unknown_option_names_the_valid_ones(tmp_path):
    with pytest.raises(ConfigCompositionException, match="wgan_gp"):
        compose_config(tmp_path, ["loss=wgangp"])


EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_recipe_builds_and_cites_its_source(tmp_path, name):
    assemble(compose_config(tmp_path, [f"experiment={name}"], tiny=False))
    text = (CONF / "experiment" / f"{name}.yaml").read_text()
    assert "et al." in text or "(" in text.splitlines()[1]


def test_groups_stay_in_their_lane():
    """Only experiments (recipes spanning groups), debug and hparams_search write outside
    their own node; a model or loss option sets its own node only."""
    global_files = {p.relative_to(CONF).parts[0] for p in CONF.rglob("*.yaml")
                    if "@package _global_" in p.read_text()}
    assert global_files <= {"experiment", "debug", "hparams_search"}
