"""A NaN in training: `on_nonfinite=stop` stops with the step and the term and keeps the last
good checkpoint; `on_nonfinite=skip` skips the update, counts it and warns."""

import logging
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ganlab.divergence import Diverged, first_nonfinite, nonfinite_tensors
from ganlab.losses import NonSaturating
from ganlab.train import fit


class NaNLoss(NonSaturating):
    """The non-saturating loss, whose discriminator loss is NaN during generator step
    ``at_step`` (counted from 1, as ganlab counts steps)."""

    def __init__(self, at_step: int = 5, **options) -> None:
        super().__init__(**options)
        self.at_step = at_step
        self.g_calls = 0

    def discriminator_loss(self, critic, real, fake):
        terms = super().discriminator_loss(critic, real, fake)
        if self.g_calls + 1 == self.at_step:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    def generator_loss(self, critic, fake, real=None):
        self.g_calls += 1
        return super().generator_loss(critic, fake, real=real)


def _config(make_config, *overrides):
    return make_config(
        [
            "model=mlp",
            "data=ring8",
            "data.batch_size=16",
            "logger=none",
            "evaluation=none",
            "callbacks.sample_grid.every_n_steps=0",
            "loss._target_=test_divergence.NaNLoss",
            "+loss.at_step=5",
            *overrides,
        ]
    )


@pytest.mark.parametrize("every_n_steps", [2, 0])
def test_stop_names_the_step_and_term_and_keeps_the_last_good_checkpoint(
    make_config, every_n_steps
):
    # Logged (and checked) every 10 steps; with saves every 2 steps the save at step 6 checks.
    cfg = _config(
        make_config,
        "trainer.max_steps=12",
        "trainer.log_every_n_steps=10",
        f"callbacks.last_checkpoint.every_n_steps={every_n_steps}",
    )
    with pytest.raises(Diverged) as err:
        fit(cfg)
    message = str(err.value)
    assert message.startswith("training diverged at step 5: train/d_loss is nan")
    assert "on_nonfinite=skip" in message and "\n" not in message
    ckpt_file = Path(cfg.callbacks.last_checkpoint.dirpath, "last.ckpt")
    if every_n_steps == 0:  # nothing saved before the divergence, nothing saved after
        assert not ckpt_file.exists()
        return
    assert message.endswith(f"; {ckpt_file} holds the last good state")
    ckpt = torch.load(ckpt_file, weights_only=True)
    assert ckpt["ganlab"]["g_steps"] == 4  # the last save before the NaN
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values())


def test_skip_skips_counts_and_warns(make_config, caplog):
    cfg = _config(make_config, "trainer.max_steps=8", "on_nonfinite=skip", "n_critic=2")
    with caplog.at_level(logging.WARNING, logger="ganlab.adversarial"):
        result = fit(cfg)
    module = result.module
    # Both discriminator updates of step 5 (n_critic=2) had a NaN loss and were skipped.
    assert module.g_steps == 8 and module.nonfinite_skips == 2
    assert module.last_logged["train/nonfinite_skips"] == 2
    assert any("step 5: skipped a discriminator update" in r.message for r in caplog.records)
    _, opt_d = result.trainer.optimizers
    assert {int(s["step"]) for s in opt_d.state.values()} == {8 * 2 - 2}
    assert all(torch.isfinite(p).all() for p in module.parameters())
    ckpt = torch.load(Path(cfg.paths.output_dir, "checkpoints", "last.ckpt"), weights_only=True)
    assert ckpt["ganlab"]["nonfinite_skips"] == 2  # carried over by a resume


def test_nonfinite_helpers_name_what_is_bad():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    assert nonfinite_tensors(net) == []
    net[1].running_var[0] = math.inf
    with torch.no_grad():
        net[0].bias[1] = math.nan
    assert nonfinite_tensors(net) == ["0.bias", "1.running_var"]
    rows = [[0.1, 0.2], [0.3, math.inf], [math.nan, 0.0]]
    assert first_nonfinite(["a", "b"], [7, 8, 9], rows) == (8, "b", math.inf)
    assert first_nonfinite(["a"], [1], [[0.5]]) is None
