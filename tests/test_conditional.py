"""Conditional GANs: the networks use the labels, training and sampling carry them."""

import numpy as np
import pytest
import torch

from ganlab.errors import GanlabError
from ganlab.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from ganlab.sample import main as sample_main
from ganlab.train import train


@pytest.mark.parametrize("conditioning", ["concat", "projection"])
def test_conditional_networks_depend_on_the_label(conditioning):
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=8, channels=1, image_size=16, width=8, num_classes=10).eval()
    d = DCGANDiscriminator(1, 16, width=8, num_classes=10, conditioning=conditioning).eval()
    z = torch.randn(1, 8).expand(2, -1)
    x = g(z, torch.tensor([3, 7]))
    assert x.shape == (2, 1, 16, 16) and not torch.allclose(x[0], x[1])
    same = x[:1].expand(2, -1, -1, -1)
    scores = d(same, torch.tensor([3, 7]))
    assert scores.shape == (2, 1) and scores[0] != scores[1]
    mg = MLPGenerator(8, (2,), hidden=(16,), num_classes=4)
    md = MLPDiscriminator((2,), hidden=(16,), num_classes=4, conditioning=conditioning)
    p = mg(torch.randn(3, 8), torch.tensor([0, 1, 3]))
    assert md(p, torch.tensor([0, 1, 3])).shape == (3, 1)
    with pytest.raises(GanlabError, match="pass class labels"):
        g(z)


def test_unknown_conditioning():
    with pytest.raises(GanlabError, match="'mixed'"):
        DCGANDiscriminator(1, 16, num_classes=10, conditioning="mixed")


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    from conftest import compose_config

    out = tmp_path_factory.mktemp("cgan")
    metrics = train(
        compose_config(
            out,
            [
                "model=dcgan",
                "data=digits",
                "conditioning=projection",
                "data.batch_size=16",
                "trainer.max_steps=3",
                "callbacks.sample_grid.every_n_steps=0",
                "callbacks.sample_grid.num_images=20",
            ],
        )
    )
    return out, metrics


def test_conditional_training_reports_class_accuracy(conditional_run):
    out, metrics = conditional_run
    assert 0.0 <= metrics["metrics/class_accuracy"] <= 1.0
    assert (out / "samples" / "final.png").is_file()
    from PIL import Image

    with Image.open(out / "samples" / "final.png") as img:  # 10 rows (classes) of 2
        width, height = img.size
    assert height > 4 * width


def test_sampling_labels_and_class_id(conditional_run, tmp_path):
    out, _ = conditional_run
    ckpt = f"checkpoint={out / 'checkpoints' / 'last.ckpt'}"
    assert sample_main([ckpt, "labels=[3,3,7]", f"output={tmp_path / 'a.npz'}"]) == 0
    a = np.load(tmp_path / "a.npz")
    assert a["samples"].shape == (3, 1, 16, 16) and list(a["labels"]) == [3, 3, 7]
    assert sample_main([ckpt, "class_id=5", "num_samples=4", f"output={tmp_path / 'b.npz'}"]) == 0
    assert list(np.load(tmp_path / "b.npz")["labels"]) == [5, 5, 5, 5]
    assert sample_main([ckpt, "class_id=10", f"output={tmp_path / 'c.npz'}"]) == 2


def test_interpolation_command(conditional_run, tmp_path):
    out, _ = conditional_run
    ckpt = f"checkpoint={out / 'checkpoints' / 'last.ckpt'}"
    assert (
        sample_main([ckpt, "num_samples=2", "interpolate=5", f"output={tmp_path / 'i.npz'}"]) == 0
    )
    samples = np.load(tmp_path / "i.npz")["samples"]
    assert samples.shape == (10, 1, 16, 16)
    assert (
        sample_main([ckpt, "num_samples=2", "interpolate=5", f"output={tmp_path / 'i.png'}"]) == 0
    )
    assert sample_main([ckpt, "interpolate=1", f"output={tmp_path / 'j.png'}"]) == 2


def test_labels_on_an_unconditional_model(make_config, tmp_path, capsys):
    out = tmp_path / "run"
    train(
        make_config(
            ["model=mlp", "data=ring8", "data.batch_size=32", "trainer.max_steps=1", "logger=none"],
            name="run",
        )
    )
    ckpt = out / "checkpoints" / "last.ckpt"
    assert sample_main([f"checkpoint={ckpt}", "labels=[1]", f"output={tmp_path / 'x.npz'}"]) == 2
    assert "need a conditional model" in capsys.readouterr().err


def test_conditioning_needs_labels(make_config):
    from ganlab.build import assemble

    cfg = make_config(["model=mlp", "data=ring8", "conditioning=concat"])
    with pytest.raises(GanlabError, match="labelled data"):
        assemble(cfg)


@pytest.mark.parametrize("model", ["sngan", "stylegan", "cyclegan"])
def test_models_without_a_conditional_variant_say_so(make_config, model):
    from ganlab.build import assemble

    cfg = make_config([f"model={model}", "conditioning=projection"], tiny=False)
    with pytest.raises(GanlabError) as excinfo:
        assemble(cfg)
    net = {"sngan": "SNGANGenerator", "stylegan": "StyleGANGenerator"}.get(model)
    expected = (f"conditioning=projection but {net} is not conditional; use conditioning=none, "
                "or a model whose networks take num_classes (set from conditioning.num_classes)"
                if net else "conditioning=projection needs labelled data but "
                "data.num_classes is null; use a labelled data set (digits, mnist, "
                "fashion_mnist, cifar10) or conditioning=none")
    assert str(excinfo.value) == expected
