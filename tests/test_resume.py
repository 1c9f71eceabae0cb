"""Exact resume and determinism: N steps straight, and N/2 + resume + N/2, end bitwise equal."""

import random
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from ganlab.callbacks.checkpoint import LastCheckpoint
from ganlab.errors import GanlabError
from ganlab.rng import capture_rng_state, restore_rng_state
from ganlab.train import fit

N = 8
# Everything a resume has to restore: D's dropout masks and the GP's interpolation weights
# (global RNG), two D updates per step (n_critic), Adam moments of both optimizers; and for
# DCGAN on digits, BatchNorm statistics and the data order, which crosses a pass boundary
# (1,437 training images, 400 per step) between the two halves.
SETUPS = {
    "mlp-ring8-wgan_gp": [
        "model=mlp",
        "data=ring8",
        "data.batch_size=16",
        "loss=wgan_gp",
        "n_critic=2",
    ],
    "dcgan-digits": ["model=dcgan", "data=digits", "data.batch_size=400"],
    # G's EMA, DiffAugment's random draws, and R1 every 3rd D update: 2 D updates a step,
    # so the halves split the lazy-regularization cycle in the middle.
    "dcgan-digits-ema-r1-diffaug": [
        "model=dcgan",
        "data=digits",
        "data.batch_size=32",
        "n_critic=2",
        "ema.half_life_kimg=0.5",
        "regularizer=r1",
        "regularizer.interval=3",
        "augment=diffaug",
    ],
    # ADA tuning p every 3 D updates (so a tuning is pending at the halfway checkpoint), on a
    # 100-image subset (3 batches a pass: the halves cross passes).
    "dcgan-digits-ada-limit": [
        "model=dcgan",
        "data=digits",
        "data.batch_size=32",
        "data.limit=100",
        "augment=ada",
        "augment.interval=3",
        "augment.speed_kimg=0.2",
    ],
    # Progressive growing: the halfway checkpoint (64 images) falls in the middle of the
    # first fade-in (50 to 150 images), and the batch size changes from 16 at 4x4 to 8 at 8x8
    # at the first step after it.
    "progan-digits-mid-fade": [
        "model=progan",
        "data.batch_size=16",
        "model.generator.batch_sizes={4:16,8:8}",
        "model.generator.stable_kimg=0.05",
        "model.generator.fade_kimg=0.1",
        "model.generator.channel_max=8",
        "model.discriminator.channel_max=8",
    ],
}
QUICK = [
    "logger=none",
    "trainer.log_every_n_steps=3",
    "callbacks.sample_grid.every_n_steps=3",  # callbacks run between the steps, as usual
]


class CopyCheckpointAt(L.Callback):
    """Copies last.ckpt aside once generator step ``step`` and all its callbacks are done
    (at the start of the next step): what a crash right after that step would leave."""

    def __init__(self, step: int, source: str, target: str) -> None:
        self.step, self.source, self.target = step, Path(source), Path(target)

    def on_train_batch_start(self, trainer, pl_module, *args) -> None:
        if pl_module.g_steps == self.step:
            shutil.copy(self.source, self.target)


def _state(result) -> tuple[dict, list[dict], tuple[int, int]]:
    module, trainer = result.module, result.trainer
    optimizers = [opt.state_dict() for opt in trainer.optimizers]
    return module.state_dict(), optimizers, (module.g_steps, module.images_seen)


def _assert_identical(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_identical(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_identical(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_half_plus_resume_plus_half_equals_straight(make_config, setup, tmp_path):
    overrides = [*SETUPS[setup], *QUICK]
    straight = fit(make_config([*overrides, f"trainer.max_steps={N}"], name="straight"))

    # Stop at N/2, then re-run the same command in the same run directory: it resumes from
    # its own checkpoints/last.ckpt (what `hydra.run.dir=<run dir>` does on the command line).
    fit(make_config([*overrides, f"trainer.max_steps={N // 2}"], name="halves"))
    resumed = fit(make_config([*overrides, f"trainer.max_steps={N}"], name="halves"))
    _assert_identical(_state(straight), _state(resumed))

    # A checkpoint written mid-run (every 3 steps here) and resumed with ckpt_path= in a new
    # run directory: what a crash or a kill after step 3 leaves behind.
    copy = tmp_path / "step3.ckpt"
    source = tmp_path / "periodic" / "checkpoints" / "last.ckpt"
    periodic = make_config(
        [
            *overrides,
            f"trainer.max_steps={N}",
            "callbacks.last_checkpoint.every_n_steps=3",
            "+callbacks.copy._target_=test_resume.CopyCheckpointAt",
            "+callbacks.copy.step=3",
            f"+callbacks.copy.source={source}",
            f"+callbacks.copy.target={copy}",
        ],
        name="periodic",
    )
    _assert_identical(_state(straight), _state(fit(periodic)))  # saving changes nothing
    from_copy = fit(make_config([*overrides, f"trainer.max_steps={N}", f"ckpt_path={copy}"]))
    _assert_identical(_state(straight), _state(from_copy))


def test_checkpoint_holds_plain_data_and_rng_states(make_config):
    cfg = make_config([*SETUPS["mlp-ring8-wgan_gp"], *QUICK, "trainer.max_steps=2"])
    fit(cfg)
    ckpt = torch.load(Path(cfg.paths.output_dir, "checkpoints", "last.ckpt"), weights_only=True)
    state = ckpt["ganlab"]
    assert state["g_steps"] == 2 and state["images_seen"] == 2 * 2 * 16
    assert set(state["rng"]) >= {"torch", "python", "numpy"}
    assert len(ckpt["optimizer_states"]) == 2  # G's and D's


def test_rng_state_roundtrip_through_a_safe_checkpoint(tmp_path):
    saved = capture_rng_state()
    expected = (torch.rand(3), random.random(), np.random.rand(2))
    torch.save({"rng": saved}, tmp_path / "rng.pt")
    torch.rand(5), random.random(), np.random.rand(7)  # move every generator on
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    again = (torch.rand(3), random.random(), np.random.rand(2))
    assert torch.equal(expected[0], again[0]) and expected[1] == again[1]
    assert np.array_equal(expected[2], again[2])


def test_last_checkpoint_is_replaced_atomically_and_runs_after_other_callbacks(make_config):
    cfg = make_config([*SETUPS["mlp-ring8-wgan_gp"], *QUICK, "trainer.max_steps=3"])
    result = fit(cfg)
    names = [type(cb).__name__ for cb in result.trainer.callbacks]
    last = max(i for i, cb in enumerate(result.trainer.callbacks) if isinstance(cb, LastCheckpoint))
    assert all(n not in ("SampleGridCallback", "EvaluationCallback") for n in names[last + 1 :])
    folder = Path(cfg.paths.output_dir, "checkpoints")
    assert [p.name for p in folder.iterdir()] == ["last.ckpt"]  # no temporary file left


@pytest.fixture
def restore_deterministic():
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


@pytest.mark.usefixtures("restore_deterministic")
def test_seed_and_deterministic_give_bitwise_identical_runs(make_config):
    overrides = [
        *SETUPS["dcgan-digits"],
        *QUICK,
        "trainer.max_steps=3",
        "trainer.deterministic=true",
    ]
    a = fit(make_config([*overrides, "seed=7"], name="a"))
    b = fit(make_config([*overrides, "seed=7"], name="b"))
    _assert_identical(_state(a), _state(b))
    c = fit(make_config([*overrides, "seed=8"], name="c"))
    assert not torch.equal(a.module.generator.net[0].weight, c.module.generator.net[0].weight)


def test_resuming_a_checkpoint_of_another_model_fails_in_one_line(make_config):
    base = ["model=mlp", "data=ring8", "data.batch_size=16", *QUICK, "trainer.max_steps=1"]
    cfg = make_config([*base, "ema.half_life_kimg=1"], name="ema")
    fit(cfg)
    ckpt = Path(cfg.paths.output_dir, "checkpoints", "last.ckpt")
    cases = {  # what this run has, and what the message says about the checkpoint
        "ema.half_life_kimg=0": "it has generator_ema.net.0.weight, which this model does not",
        "model.generator.hidden=[64,32]": "generator.net.0.weight has shape [32, 8] there",
    }
    for i, (override, problem) in enumerate(cases.items()):
        with pytest.raises(GanlabError) as err:
            fit(make_config([*base, override, f"ckpt_path={ckpt}"], name=f"case{i}"))
        assert str(err.value).startswith(f"ckpt_path={ckpt} does not fit this run's model: ")
        assert problem in str(err.value) and "\n" not in str(err.value)
