"""A few training steps of every model and every loss, and what a run leaves behind."""

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import CONF

from ganlab.train import train

LOSSES = sorted(p.stem for p in (CONF / "loss").glob("*.yaml"))
SETUPS = {
    "mlp": ["model=mlp", "data=ring8", "data.batch_size=32"],
    "dcgan": ["model=dcgan", "data=digits", "data.batch_size=16"],
}


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", sorted(SETUPS))
def test_every_model_and_loss_trains(make_config, model, loss):
    cfg = make_config(
        [
            *SETUPS[model],
            f"loss={loss}",
            "trainer.max_steps=3",
            "trainer.log_every_n_steps=1",
            "callbacks.sample_grid.every_n_steps=2",
        ]
    )
    metrics = train(cfg)
    assert metrics["steps"] == 3
    assert math.isfinite(metrics["train/d_loss"]) and math.isfinite(metrics["train/g_loss"])
    if loss == "wgan_gp":
        assert metrics["train/gradient_penalty"] >= 0
    if loss in ("wgan", "wgan_gp"):
        assert "train/wasserstein" in metrics
    out = Path(cfg.paths.output_dir)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == 3
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert (out / "samples" / "step_000002.png").is_file()
    assert (out / "samples" / "final.png").is_file()


def test_wgan_clips_every_discriminator_weight(make_config):
    from ganlab.train import fit

    result = fit(make_config([*SETUPS["mlp"], "loss=wgan", "trainer.max_steps=2", "logger=none"]))
    weights = torch.cat([p.flatten() for p in result.module.discriminator.parameters()])
    assert weights.abs().max() <= 0.01 + 1e-7


def test_mixture_run_reports_the_mode_coverage_of_its_generator(make_config):
    """metrics.json holds mode coverage of the trained G's samples (the evaluation's seed and
    sample count), recomputed here from the checkpoint, and its protocol."""
    from ganlab.data import Ring
    from ganlab.generator import load_generator
    from ganlab.metrics.mixture import mode_coverage

    cfg = make_config([*SETUPS["mlp"], "trainer.max_steps=2", "logger=none",
                       "evaluation.num_samples=500"])
    metrics = train(cfg)
    stored = load_generator(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    z = torch.randn(500, stored.latent_dim, generator=torch.Generator().manual_seed(cfg.seed))
    with torch.no_grad():
        points = stored.net(z) * stored.scale  # data coordinates
    ring = Ring(batch_size=32)
    expected = mode_coverage(points, ring.centers, ring.std)
    assert {k: metrics[f"metrics/{k}"] for k in expected} == pytest.approx(expected)
    assert metrics["protocol/num_fake"] == 500 and metrics["protocol/threshold_std"] == 3.0


def test_rerun_in_the_same_directory_resumes_instead_of_overwriting(make_config):
    cfg = make_config([*SETUPS["mlp"], "trainer.max_steps=2", "logger=none"], name="same")
    train(cfg)
    cfg = make_config([*SETUPS["mlp"], "trainer.max_steps=4", "logger=none"], name="same")
    metrics = train(cfg)
    assert metrics["steps"] == 4
    assert metrics["images_seen"] == 4 * 32
