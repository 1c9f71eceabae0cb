"""Behaviour pinned bitwise: the logged losses of the first 50 steps and the final weights of
twelve configurations.

Every value in ``golden/losses.json`` is the float32 that TensorBoard received at that step,
and every weight fingerprint is the sha256 of the network's tensors in registration order;
a change that moves one bit of one loss of one step fails here.

Float results depend on which kernels the CPU gets: ATen's vector width (AVX2 or AVX-512),
MKL's code path and oneDNN's convolutions follow the processor, so the same code gives
different last bits on different machines. Each case therefore runs in its own process in
one pinned float environment (``PINNED``): ATen at AVX2, MKL's conditional numerical
reproducibility at AVX2, two threads, and ATen's own convolutions instead of oneDNN's.
In it the values are the same on any x86-64 CPU with AVX2, whatever else it has (checked
with MKL told to use AVX-512 and with one core). Other processors, or another torch release
than the one recorded, skip with the reason: their kernels are different code.

The values were recorded with the code of commit 3c7d558, whose behaviour matched the first
recording (made before the module was rebuilt from composable parts, on a machine without
AVX-512) bit for bit; ``GANLAB_RECORD_GOLDEN=1 pytest -m slow tests/test_golden.py`` writes
them again (only for a deliberate change of behaviour, said so in the commit).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

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
# The float environment of the recording (see the module's docstring); set before torch loads.
PINNED = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
}
THREADS = 2


def fingerprint(net: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for tensor in net.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def run_case(name: str, workdir: Path) -> dict:
    """Train case ``name`` in this process (which must have been started with ``PINNED``)."""
    import conftest

    from ganlab.train import fit

    assert all(os.environ.get(k) == v for k, v in PINNED.items()), "start with PINNED"
    torch.backends.mkldnn.enabled = False
    torch.set_num_threads(THREADS)
    conftest._DATA_DIR.append(workdir / "data")
    cfg = conftest.compose_config(workdir / name, [*COMMON, *CASES[name]], tiny=False)
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


def environment() -> dict:
    """What the recorded bits depend on besides ``PINNED``."""
    return {"torch": torch.__version__.split("+")[0], "machine": platform.machine()}


def run_pinned(name: str, workdir: Path) -> dict:
    """``run_case`` in a fresh process started in the pinned float environment."""
    env = {**os.environ, **PINNED}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, __file__, name, str(workdir)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_losses_and_weights_match_the_recorded_run(tmp_path, name):
    if platform.machine().lower() not in ("x86_64", "amd64") or \
            torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("the golden values are x86-64 AVX2 kernels' bits; "
                    f"this CPU runs {platform.machine()} {torch.backends.cpu.get_cpu_capability()}")
    got = run_pinned(name, tmp_path)
    if os.environ.get("GANLAB_RECORD_GOLDEN"):
        recorded = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
        recorded.setdefault("cases", {})[name] = got
        recorded["environment"] = {**environment(), "pinned": PINNED, "threads": THREADS}
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        pytest.skip("recorded")
    golden = json.loads(GOLDEN.read_text())
    recorded_env = {k: golden["environment"][k] for k in environment()}
    if recorded_env != environment():
        pytest.skip(f"the golden values were recorded with {recorded_env}; this is "
                    f"{environment()}, whose kernels may differ in the last bit. Re-record on "
                    "a commit you trust: GANLAB_RECORD_GOLDEN=1 pytest -m slow tests/test_golden.py")
    want = golden["cases"][name]
    assert got["steps"] == want["steps"] == STEPS
    assert sorted(got["losses"]) == sorted(want["losses"])
    for tag, values in want["losses"].items():
        assert len(values) == STEPS, tag
        for step, (a, b) in enumerate(zip(got["losses"][tag], values, strict=True), start=1):
            assert a == b, f"{tag} at step {step}: {a!r} != recorded {b!r}"
    assert got["weights"] == want["weights"]


if __name__ == "__main__":  # python tests/test_golden.py CASE WORKDIR: one case, JSON on stdout
    print(json.dumps(run_case(sys.argv[1], Path(sys.argv[2]))))
