"""The alternating schedule: n_critic fresh D updates, then one G update with D frozen."""

import pytest
import torch

from ganlab.losses import NonSaturating
from ganlab.train import fit, train


class RecordingLoss(NonSaturating):
    """The real non-saturating loss, recording what the schedule hands it."""

    last: "RecordingLoss | None" = None

    def __init__(self, **options) -> None:
        super().__init__(**options)  # the loss config's label_smoothing, instance_noise, ...
        self.events: list[tuple[str, object]] = []
        RecordingLoss.last = self

    def discriminator_loss(self, critic, real, fake):
        d_frozen = not any(p.requires_grad for p in critic.parameters())
        self.events.append(("d", (real.clone(), fake.requires_grad, d_frozen)))
        return super().discriminator_loss(critic, real, fake)

    def generator_loss(self, critic, fake, real=None):
        d_frozen = not any(p.requires_grad for p in critic.parameters())
        self.events.append(("g", (fake.requires_grad, d_frozen)))
        return super().generator_loss(critic, fake, real=real)


@pytest.fixture
def recorded(make_config):
    """Train ring8/mlp for 3 generator steps with n_critic=4 and return the recording loss."""
    cfg = make_config(
        [
            "model=mlp",
            "data=ring8",
            "n_critic=4",
            "trainer.max_steps=3",
            "data.batch_size=16",
            "logger=none",
            "loss._target_=test_module.RecordingLoss",
        ]
    )
    metrics = train(cfg)
    return RecordingLoss.last, metrics


def test_schedule_order_and_counts(recorded):
    loss, metrics = recorded
    kinds = "".join(kind for kind, _ in loss.events)
    assert kinds == "ddddg" * 3
    assert metrics["steps"] == 3
    assert metrics["images_seen"] == 3 * 4 * 16


def test_each_d_update_gets_a_fresh_real_batch_and_detached_fakes(recorded):
    loss, _ = recorded
    reals = [payload[0] for kind, payload in loss.events if kind == "d"]
    assert all(r.shape == (16, 2) for r in reals)
    for i in range(len(reals)):
        for j in range(i):
            assert not torch.equal(reals[i], reals[j])
    assert not any(payload[1] for kind, payload in loss.events if kind == "d")  # no grad to G


def test_d_is_frozen_during_g_step_and_g_gets_gradients(recorded):
    loss, _ = recorded
    g_events = [payload for kind, payload in loss.events if kind == "g"]
    assert all(fake_requires_grad and d_frozen for fake_requires_grad, d_frozen in g_events)
    d_events = [payload for kind, payload in loss.events if kind == "d"]
    assert not any(d_frozen for _, _, d_frozen in d_events)


@pytest.mark.parametrize("n_critic", [1, 5])
def test_max_steps_counts_generator_updates(make_config, n_critic):
    cfg = make_config(
        [
            "model=mlp",
            "data=ring8",
            f"n_critic={n_critic}",
            "trainer.max_steps=7",
            "data.batch_size=8",
            "logger=none",
        ]
    )
    result = fit(cfg)
    module, trainer = result.module, result.trainer
    assert module.g_steps == 7
    opt_g, opt_d = trainer.optimizers
    g_steps = {int(s["step"]) for s in opt_g.state.values()}
    d_steps = {int(s["step"]) for s in opt_d.state.values()}
    assert g_steps == {7}
    assert d_steps == {7 * n_critic}
    # Lightning's own counter counts every optimizer step (Lightning issue 17958).
    assert trainer.global_step == 7 * (n_critic + 1)
