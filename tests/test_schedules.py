"""Schedules of the images seen (ganlab.schedules): their values against hand-computed ones,
where a YAML puts them (an optimizer's lr and beta2, a penalty's gamma, the EMA half-life),
what a run logs and applies, and a resumed run continuing them bitwise."""

import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_resume import _assert_identical, _state

from ganlab.build import assemble
from ganlab.ema import EMA, ema_beta
from ganlab.errors import GanlabError
from ganlab.schedules import Constant, Cosine, Linear, split_optimizer
from ganlab.train import fit


def test_constant_and_linear():
    assert Constant(3)(0) == Constant(3)(10**9) == 3.0
    ramp = Linear(start=1.0, end=0.0, total_kimg=2)
    assert [ramp(n) for n in (0, 500, 1000, 2000, 9000)] == [1.0, 0.75, 0.5, 0.0, 0.0]
    assert ramp.bounds() == (0.0, 1.0)


def test_cosine_without_warmup_is_half_a_cosine():
    c = Cosine(start=2e-4, end=5e-5, total_kimg=4)
    # v(n) = start + (1 - d) (end - start), d = (1 + cos(pi n / T)) / 2; at T / 4,
    # 1 - d = (1 - cos(pi / 4)) / 2.
    quarter = 2e-4 + (1 - math.sqrt(0.5)) / 2 * (5e-5 - 2e-4)
    assert c(0) == 2e-4 and c(2000) == pytest.approx(1.25e-4) and c(4000) == pytest.approx(5e-5)
    assert c(1000) == pytest.approx(quarter, rel=1e-12) and c(10**7) == 5e-5


def test_cosine_warmup_and_hold_as_r3gan_computes_them():
    # R3GAN's cosine_decay_with_warmup(n, base_value=1, total_nimg=10000, final_value=0,
    # warmup_value=0.2, warmup_nimg=2000, hold_base_value_nimg=1000), by hand:
    c = Cosine(start=1.0, end=0.0, total_kimg=10, warmup_kimg=2, warmup_start=0.2, hold_kimg=1)
    assert c(0) == pytest.approx(0.2)
    assert c(1000) == pytest.approx(0.6)  # slope (1 - 0.2) / 2000 per image
    assert c(2000) == c(2500) == c(3000) == 1.0  # held
    # then over the remaining 7000 images: at 3000 + 3500, halfway, (1 + cos(pi / 2)) / 2
    assert c(6500) == pytest.approx(0.5)
    assert c(10000) == pytest.approx(0.0, abs=1e-15) and c(10001) == 0.0
    assert c.bounds() == (0.0, 1.0)


@pytest.mark.parametrize("make,message", [
    (lambda: Cosine(start=1, end=0, total_kimg=0), "total_kimg=0 is not allowed"),
    (lambda: Cosine(start=1, end=0, total_kimg=1, warmup_kimg=1), "total_kimg=1 is not allowed"),
    (lambda: Linear(start="a", end=0, total_kimg=1), "start='a' is not allowed"),
])
def test_bad_schedules_are_one_line(make, message):
    with pytest.raises(GanlabError, match=message) as err:
        make()
    assert "\n" not in str(err.value)


def test_an_optimizer_factory_gives_its_schedules_and_numbers_at_zero_images():
    import functools

    lr = Cosine(start=2e-4, end=5e-5, total_kimg=1)
    beta2 = Linear(start=0.9, end=0.99, total_kimg=1)
    factory, found = split_optimizer(
        functools.partial(torch.optim.Adam, lr=lr, betas=[0.0, beta2]), "optimizer.generator")
    assert found == {("lr", None): lr, ("betas", 1): beta2}
    opt = factory([torch.nn.Parameter(torch.zeros(1))])
    assert opt.param_groups[0]["lr"] == 2e-4 and opt.param_groups[0]["betas"] == (0.0, 0.9)
    with pytest.raises(GanlabError, match=r"optimizer.generator.betas\[1\]=Linear"):
        split_optimizer(functools.partial(torch.optim.Adam, betas=[0.0, Linear(
            start=0.9, end=1.0, total_kimg=1)]), "optimizer.generator")


def test_ema_half_life_schedule_starts_as_a_copy():
    ema = EMA(Linear(start=0.0, end=1.0, total_kimg=1))
    assert ema.enabled and ema.current == 0.0 and ema_beta(64, 0.0) == 0.0
    assert ema.at(500) == {"schedule/ema_half_life_kimg": 0.5}
    assert ema_beta(64, ema.current) == 0.5 ** (64 / 500)
    assert not EMA(Constant(0)).enabled and not EMA(0).enabled


def _cosine(start: float, end: float, total_kimg: float) -> str:
    return (f"{{_target_:ganlab.schedules.Cosine,start:{start},end:{end},"
            f"total_kimg:{total_kimg}}}")


def _linear(start: float, end: float, total_kimg: float) -> str:
    return (f"{{_target_:ganlab.schedules.Linear,start:{start},end:{end},"
            f"total_kimg:{total_kimg}}}")


# Every kind of scheduled value on a tiny DCGAN (16 images a step; 8 steps are 0.128 kimg).
SCHEDULED = [
    "model=dcgan", "data=digits", "data.batch_size=16", "regularizer=r1r2",
    f"optimizer.generator.lr={_cosine(2e-4, 5e-5, 0.1)}",
    f"optimizer.discriminator.lr={_cosine(4e-4, 1e-4, 0.1)}",
    f"optimizer.generator.betas=[0.0,{_cosine(0.9, 0.99, 0.1)}]",
    f"regularizer.gamma={_cosine(0.5, 0.05, 0.1)}",
    f"ema.half_life_kimg={_cosine(0.0, 0.05, 0.1)}",
    "augment=ada", "augment.adaptive=false", f"augment.p={_linear(0.0, 0.8, 0.1)}",
    "logger=none", "trainer.log_every_n_steps=3", "callbacks.sample_grid.every_n_steps=3",
    "evaluation=none",
]


def test_a_run_logs_and_applies_every_schedule(make_config):
    cfg = make_config([*SCHEDULED, "trainer.max_steps=3", "logger=tensorboard",
                       "trainer.log_every_n_steps=1"])
    result = fit(cfg)
    acc = EventAccumulator(cfg.paths.output_dir, size_guidance={"scalars": 0}).Reload()
    lr = Cosine(start=2e-4, end=5e-5, total_kimg=0.1)
    beta2 = Cosine(start=0.9, end=0.99, total_kimg=0.1)
    gamma = Cosine(start=0.5, end=0.05, total_kimg=0.1)
    expected = {  # each step's value at the images seen before it: 0, 16, 32
        "schedule/lr_generator": [lr(n) for n in (0, 16, 32)],
        "schedule/beta2_generator": [beta2(n) for n in (0, 16, 32)],
        "schedule/lr_discriminator": [Cosine(start=4e-4, end=1e-4, total_kimg=0.1)(n)
                                      for n in (0, 16, 32)],
        "schedule/r1r2_gamma": [gamma(n) for n in (0, 16, 32)],
        "schedule/ema_half_life_kimg": [Cosine(start=0, end=0.05, total_kimg=0.1)(n)
                                        for n in (0, 16, 32)],
        "schedule/augment_p": [0.0, 0.128, 0.256],  # 0.8 * n / 100
    }
    tags = {t for t in acc.Tags()["scalars"] if t.startswith("schedule/")}
    assert tags == set(expected)  # D's beta2 is not scheduled here
    for tag, values in expected.items():
        logged = acc.Scalars(tag)
        assert [e.step for e in logged] == [1, 2, 3]
        assert [e.value for e in logged] == pytest.approx(values, rel=1e-6)
    opt_g, opt_d = result.trainer.optimizers
    assert opt_g.param_groups[0]["lr"] == lr(32) and opt_g.param_groups[0]["betas"][1] == beta2(32)
    assert opt_d.param_groups[0]["betas"] == (0.5, 0.999)  # the default, unscheduled
    (penalty,) = result.module.penalties.items
    assert penalty.weight == gamma(32) / 2
    assert float(result.module.augment.p) == pytest.approx(0.256)  # the last step's p


def test_a_schedule_composes_with_lr_decay(make_config):
    result = fit(make_config([*SCHEDULED, "trainer.max_steps=4", "lr_decay_start=0.5"]))
    opt_g = result.trainer.optimizers[0]
    # Step 4 (48 images seen before it): the scheduled lr times the linear decay, 2/4 -> 1/2.
    lr = Cosine(start=2e-4, end=5e-5, total_kimg=0.1)(48)
    assert opt_g.param_groups[0]["lr"] == pytest.approx(lr * 0.5, rel=1e-12)


def test_resume_continues_every_schedule_bitwise(make_config):
    n = 8
    straight = fit(make_config([*SCHEDULED, f"trainer.max_steps={n}"], name="straight"))
    fit(make_config([*SCHEDULED, f"trainer.max_steps={n // 2}"], name="halves"))
    resumed = fit(make_config([*SCHEDULED, f"trainer.max_steps={n}"], name="halves"))
    _assert_identical(_state(straight), _state(resumed))
    assert resumed.module.ema.current == straight.module.ema.current > 0
    assert float(resumed.module.augment.p) == float(straight.module.augment.p) > 0


@pytest.mark.parametrize("override,message", [
    (f"regularizer.gamma={_cosine(0.1, -0.1, 1)}",
     "regularizer.gamma=Cosine(start=0.1, end=-0.1"),
    (f"optimizer.generator.lr={_cosine(1e-4, -1e-4, 1)}", "optimizer.generator.lr=Cosine"),
    (f"ema.half_life_kimg={_cosine(1, 2, 0)}", "ema.half_life_kimg.total_kimg=0 is not allowed"),
    (f"augment=ada augment.adaptive=false augment.p={_linear(0, 1.5, 1)}",
     "augment.p=Linear(start=0, end=1.5, total_kimg=1) is not allowed: every value of the "
     "schedule must be in [0, 1]"),
    (f"augment=ada augment.p={_linear(0, 0.5, 1)}",
     "augment.adaptive=True is not allowed: p is a schedule"),
])
def test_bad_scheduled_values_name_the_key(tmp_path, override, message):
    from conftest import compose_config

    cfg = compose_config(tmp_path, ["regularizer=r1r2", *override.split()])
    with pytest.raises(GanlabError) as err:
        assemble(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_an_unscheduled_run_logs_no_schedule(make_config):
    cfg = make_config(["model=dcgan", "data.batch_size=16", "trainer.max_steps=2",
                       "evaluation=none", "trainer.log_every_n_steps=1"])
    fit(cfg)
    acc = EventAccumulator(cfg.paths.output_dir, size_guidance={"scalars": 0}).Reload()
    assert not [t for t in acc.Tags()["scalars"] if t.startswith("schedule/")]
    assert Path(cfg.paths.output_dir, "checkpoints", "last.ckpt").is_file()
