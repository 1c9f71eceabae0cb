"""Behaviour pinned bitwise: the logged losses of the first 50 steps and the final weights of
eight configurations, recorded before the module was rebuilt from composable parts.

Every value in ``golden/losses.json`` is the float32 that TensorBoard received at that step,
and every weight fingerprint is the sha256 of the network's tensors in registration order;
a change that moves one bit of one loss of one step fails here. The file was written by
the code of the commit that added it; ``GANLAB_RECORD_GOLDEN=1 pytest tests/test_golden.py``
writes it again (only for a deliberate change of behaviour, said so in the commit).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganlab.train import fit

GOLDEN = Path(__file__).parent / "golden" / "losses.json"
STEPS = 50
# Each case: the overrides of the documented command (seed 0, CPU, deterministic) at full
# size, but 16x16 images for stylegan and cyclegan (the same code, a quarter of the time);
# evaluation and periodic outputs off (they draw no training random numbers).
CASES = {
    "default": [],
    "mlp_ring8_wgan_gp": ["model=mlp", "data=ring8", "loss=wgan_gp"],
    "r1": ["regularizer=r1"],
    "stylegan": ["model=stylegan", "data.image_size=16"],
    "cyclegan": ["model=cyclegan", "data.image_size=16"],
    "projection": ["conditioning=projection"],
    "pack2": ["pack=2"],
    "ema": ["ema.half_life_kimg=1"],
    # Beyond the list: G's lazy penalty, DiffAugment with lr decay, clipping + DRAGAN,
    # and the concatenating conditional MLP.
    "stylegan_path_length": ["model=stylegan", "data.image_size=16",
                             "model.penalties.path_length.weight=2",
                             "model.penalties.path_length.interval=4",
                             "model.penalties.r1.interval=4"],
    "diffaug_lr_decay": ["augment=diffaug", "lr_decay_start=0.5"],
    "mlp_ring8_wgan_dragan": ["model=mlp", "data=ring8", "loss=wgan", "regularizer=dragan"],
    "mlp_digits_concat": ["model=mlp", "conditioning=concat"],
}
COMMON = [
    f"trainer.max_steps={STEPS}",
    "trainer.deterministic=true",
    "evaluation=none",
    "callbacks.sample_grid.every_n_steps=0",
    "callbacks.last_checkpoint.every_n_steps=0",
    "~callbacks.diagnostics",
]


def fingerprint(net: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for tensor in net.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def run_case(make_config, name: str) -> dict:
    cfg = make_config([*COMMON, *CASES[name]], tiny=False, name=name)
    result = fit(cfg)
    acc = EventAccumulator(cfg.paths.output_dir, size_guidance={"scalars": 0}).Reload()
    losses = {
        tag: [e.value for e in acc.Scalars(tag)]
        for tag in sorted(acc.Tags()["scalars"])
        if tag.startswith("train/")
    }
    module = result.module
    weights = {
        "generator": fingerprint(module.generator),
        "discriminator": fingerprint(module.discriminator),
    }
    ema, is_ema = module.eval_generator()
    if is_ema:
        weights["generator_ema"] = fingerprint(ema)
    return {"steps": module.g_steps, "losses": losses, "weights": weights}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_losses_and_weights_match_the_recorded_run(make_config, name):
    got = run_case(make_config, name)
    if os.environ.get("GANLAB_RECORD_GOLDEN"):
        recorded = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
        recorded[name] = got
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        pytest.skip("recorded")
    want = json.loads(GOLDEN.read_text())[name]
    assert got["steps"] == want["steps"] == STEPS
    assert sorted(got["losses"]) == sorted(want["losses"])
    for tag, values in want["losses"].items():
        assert len(values) == STEPS, tag
        for step, (a, b) in enumerate(zip(got["losses"][tag], values, strict=True), start=1):
            assert a == b, f"{tag} at step {step}: {a!r} != recorded {b!r}"
    assert got["weights"] == want["weights"]
