"""lr_decay_start: constant learning rates, then a linear decay to 0 at trainer.max_steps."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganlab.build import assemble, build_module
from ganlab.errors import GanlabError
from ganlab.train import train

QUICK = [
    "model=mlp",
    "data=ring8",
    "optimizer.generator.lr=1e-3",
    "optimizer.discriminator.lr=4e-3",
    "lr_decay_start=0.5",
    "trainer.log_every_n_steps=1",
    "callbacks.diagnostics.every_n_steps=1",  # logs lr/generator and lr/discriminator
    "callbacks.evaluation.every_n_steps=1000",
    "callbacks.sample_grid.every_n_steps=1000",
]
# The update that ends at step k runs with lr * min(1, (8 - (k - 1)) / (8 - 4)).
FACTORS = {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0, 5: 1.0, 6: 0.75, 7: 0.5, 8: 0.25}


def _logged_lr(run: Path, tag: str) -> dict[int, float]:
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
    return {e.step: e.value for e in acc.Scalars(tag)}


def test_learning_rates_decay_linearly_after_the_start_fraction(make_config):
    cfg = make_config([*QUICK, "trainer.max_steps=8"])
    train(cfg)
    run = Path(cfg.paths.output_dir)
    for tag, base in (("lr/generator", 1e-3), ("lr/discriminator", 4e-3)):
        logged = _logged_lr(run, tag)
        assert logged == pytest.approx({k: base * f for k, f in FACTORS.items()})


def test_a_resumed_run_continues_the_schedule_from_the_configured_lr(make_config):
    # The first half ends with lr already decayed; the resumed run must compute its lr from
    # the configured value kept in the checkpoint, not shrink the decayed one again.
    train(make_config([*QUICK, "trainer.max_steps=4", "lr_decay_start=0.0"], name="halves"))
    cfg = make_config([*QUICK, "trainer.max_steps=8"], name="halves")
    train(cfg)
    logged = _logged_lr(Path(cfg.paths.output_dir), "lr/generator")
    assert {k: logged[k] for k in (5, 6, 7, 8)} == pytest.approx(
        {k: 1e-3 * FACTORS[k] for k in (5, 6, 7, 8)}
    )
    assert logged[4] == pytest.approx(1e-3 * 1 / 4)  # first half: 0 -> decay over 4 steps


def test_models_recommend_their_schedule_unless_it_is_set(make_config):
    def start(overrides):
        return build_module(make_config(overrides)).schedule.lr_decay_start

    assert start(["model=mlp", "data=ring8"]) == 1.0
    cyclegan = ["model=cyclegan", "data.image_size=16"]
    assert start(cyclegan) == 0.5  # model.recommended.lr_decay_start
    assert start([*cyclegan, "lr_decay_start=0.8"]) == 0.8


@pytest.mark.parametrize("value", ["2", "-0.1"])
def test_a_bad_start_fraction_is_one_clear_error(make_config, value):
    with pytest.raises(GanlabError, match=r"^lr_decay_start.*number in \[0, 1\]"):
        assemble(make_config(["model=mlp", "data=ring8", f"lr_decay_start={value}"]))


def test_a_start_fraction_that_is_not_a_number_fails_when_hydra_composes(make_config):
    with pytest.raises(ConfigCompositionException, match="override lr_decay_start=soon"):
        make_config(["model=mlp", "data=ring8", "lr_decay_start=soon"])
