"""Under `trainer.precision=bf16-mixed` the WGAN-GP and R1 penalties are computed in float32."""

import pytest
import torch

from ganlab.losses import WassersteinGP
from ganlab.penalties import R1, GradientPenalty
from ganlab.train import fit


class RecordingGP(GradientPenalty):
    """WGAN-GP's penalty recording, at each D update inside Lightning's training step: the
    penalty as trained, the same penalty (same batch, same interpolation weights) in plain
    float32 with autocast off, whether autocast was on, and the dtype D's logits had there."""

    records: list[dict] = []

    def forward(self, critic, real, fake):
        rng = torch.get_rng_state()
        value = super().forward(critic, real, fake)
        after = torch.get_rng_state()
        torch.set_rng_state(rng)  # replay: the same eps for the reference
        with torch.autocast("cpu", enabled=False):
            reference = super().forward(critic, real.float(), fake.float())
        torch.set_rng_state(after)
        with torch.no_grad():
            logits_dtype = critic(real[:4]).dtype
        RecordingGP.records.append(
            {
                "penalty": value.detach(),
                "reference": reference.detach(),
                "autocast": torch.is_autocast_enabled("cpu"),
                "autocast_dtype": torch.get_autocast_dtype("cpu"),
                "logits_dtype": logits_dtype,
                "fake_dtype": fake.dtype,
            }
        )
        return value


class RecordingWassersteinGP(WassersteinGP):
    """WGAN-GP whose own penalty is the recording one."""

    def __init__(self, **options):
        super().__init__(**options)
        self.penalties = (RecordingGP(weight=self.gp_weight),)


class RecordingR1(R1):
    """R1 recording its penalty as trained and the same penalty with autocast off."""

    records: list[dict] = []

    def forward(self, critic, real, fake):
        value = super().forward(critic, real, fake)
        with torch.autocast("cpu", enabled=False):
            reference = super().forward(critic, real.float(), fake.float())
        RecordingR1.records.append(
            {
                "penalty": value.detach(),
                "reference": reference.detach(),
                "autocast": torch.is_autocast_enabled("cpu"),
            }
        )
        return value


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_penalties_are_float32_under_bf16_mixed(make_config, precision):
    RecordingGP.records, RecordingR1.records = [], []
    cfg = make_config(
        [
            "model=dcgan",
            "data=digits",
            "data.batch_size=16",
            "loss=wgan_gp",
            "loss._target_=test_mixed_precision.RecordingWassersteinGP",
            "n_critic=2",
            "regularizer=r1",
            "regularizer._target_=test_mixed_precision.RecordingR1",
            "regularizer.interval=1",
            "trainer.max_steps=2",
            f"trainer.precision={precision}",
            "logger=none",
            "callbacks.sample_grid.every_n_steps=0",
        ]
    )
    fit(cfg)
    records = RecordingGP.records
    assert len(records) == 4  # 2 steps x n_critic 2
    mixed = precision == "bf16-mixed"
    for r in records:
        # Lightning really runs the step under bf16 autocast: D's logits come out in bf16.
        assert r["autocast"] is mixed
        assert r["logits_dtype"] == (torch.bfloat16 if mixed else torch.float32)
        # ... and the penalty is float32 and matches plain float32 on the same batch.
        assert r["penalty"].dtype == torch.float32
        torch.testing.assert_close(r["penalty"], r["reference"], rtol=1e-5, atol=1e-6)
    assert len(RecordingR1.records) == 4
    for r in RecordingR1.records:
        assert r["autocast"] is mixed and r["penalty"].dtype == torch.float32
        torch.testing.assert_close(r["penalty"], r["reference"], rtol=1e-5, atol=1e-6)
