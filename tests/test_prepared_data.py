"""data=prepared: a prepared set in memory or streamed by litdata, mirrored, labelled, resumed
bit for bit, and shared by DDP ranks without overlap."""

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import ROOT, TINY
from PIL import Image
from test_resume import QUICK, _assert_identical, _state

from ganlab.data import PreparedDataModule
from ganlab.errors import GanlabError
from ganlab.prepare import main as prepare
from ganlab.train import fit, train


def prepared(tmp_path: Path, n: int = 12, layout: str = "litdata", classes: int = 2) -> Path:
    """A set of ``n`` distinct 8x8 RGB images in ``classes`` class folders."""
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = tmp_path / "src" / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / f"set-{layout}"
    args = [f"source={tmp_path / 'src'}", f"output={out}", "image_size=8", "labels=folders",
            f"format={layout}", "progress=false"]
    assert prepare(args) == 0
    return out


def module(path: Path, **options) -> PreparedDataModule:
    return PreparedDataModule(str(path), image_size=8, **options)


def rows(x: torch.Tensor) -> list[tuple]:
    return sorted(tuple(v) for v in x.flatten(1).tolist())


def test_in_memory_pass_with_xflip_holds_every_image_and_its_mirror(tmp_path):
    path = prepared(tmp_path, layout="zip")
    data = module(path, batch_size=24, xflip=True, num_classes=2)
    data.setup()
    assert data._stream is None  # 2.3 kB: held in memory
    x, y = data._next_batch()  # one draw of 24 = one pass over 12 images and 12 mirrors
    real, labels = data.tensors("train")
    assert rows(x) == rows(torch.cat([real, real.flip(-1)]))
    assert sorted(y.tolist()) == sorted(labels.tolist() * 2)


def test_streamed_passes_cover_the_set_and_mirror_each_image_once(tmp_path):
    path = prepared(tmp_path)
    data = module(path, batch_size=3, memory_limit="1kB", workers=2, xflip=True)
    data.setup()
    assert data._stream is not None and data.sharded_by_loader
    batches = [data._next_batch() for _ in range(8)]  # two passes (2 workers x 2 batches each)
    assert all(y is None for _, y in batches)  # num_classes null: labels not used
    real, _ = data.tensors()
    seen = torch.cat([x for x, _ in batches])
    assert rows(seen) == rows(torch.cat([real, real.flip(-1)]))
    # A pass holds each image once; mirrored in one of the two passes.
    assert len(set(map(tuple, seen[:12].flatten(1).abs().tolist()))) == 12


def test_config_errors_are_one_line(tmp_path):
    path = prepared(tmp_path, layout="zip")
    cases = {
        "data.image_size=8 data.channels=3": dict(image_size=16),
        "data.num_classes=2": dict(num_classes=3),
        "memory_limit='lots' is not allowed": dict(memory_limit="lots"),
        "does not exist": dict(path=str(tmp_path / "missing")),
    }
    for message, options in cases.items():
        options = {"path": str(path), "image_size": 8, **options}
        with pytest.raises(GanlabError) as err:
            PreparedDataModule(**options)
        assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(GanlabError, match="a zip cannot be streamed; prepare it .* format=litdata"):
        module(path, memory_limit=100).setup()


def test_a_litdata_folder_from_another_version_is_refused(tmp_path):
    path = prepared(tmp_path)
    meta = json.loads((path / "ganlab.json").read_text())
    (path / "ganlab.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(GanlabError, match="another version of ganlab.prepare"):
        module(path)
    (path / "ganlab.json").write_text(json.dumps(meta))
    index = json.loads((path / "index.json").read_text())
    index["config"]["data_format"] = ["pil", "int"]
    (path / "index.json").write_text(json.dumps(index))
    with pytest.raises(GanlabError, match="does not hold ganlab's items"):
        module(path)


def test_training_on_a_prepared_zip_with_projection(make_config, tmp_path):
    path = prepared(tmp_path, layout="zip")
    cfg = make_config(["data=prepared", f"data.path={path}", "data.image_size=8",
                       "data.num_classes=2", "conditioning=projection", "data.batch_size=4",
                       "evaluation=none", "logger=none", "trainer.max_steps=3"])
    metrics = train(cfg)
    assert metrics["steps"] == 3 and metrics["images_seen"] == 12
    assert np.isfinite(metrics["train/d_loss"])


STREAM = ["model=dcgan", "data=prepared", "data.image_size=8", "data.memory_limit=1kB",
          "data.batch_size=4", "data.workers=2", "evaluation=none", *QUICK]


@pytest.mark.slow
def test_streamed_half_plus_resume_plus_half_equals_straight(make_config, tmp_path):
    # 12 images, 2 workers with 6 each: a pass is 2 batches of 4 (tails dropped), so 8 steps
    # cross 3 pass boundaries and the halves split a pass between the workers.
    path = prepared(tmp_path)
    overrides = [*STREAM, f"data.path={path}", "data.xflip=true"]
    straight = fit(make_config([*overrides, "trainer.max_steps=8"], name="straight"))
    fit(make_config([*overrides, "trainer.max_steps=3"], name="halves"))
    resumed = fit(make_config([*overrides, "trainer.max_steps=8"], name="halves"))
    _assert_identical(_state(straight), _state(resumed))
    other = fit(make_config([*overrides, "trainer.max_steps=8", "seed=1"], name="other"))
    assert not torch.equal(straight.module.generator.net[0].weight,
                           other.module.generator.net[0].weight)


class RecordImages(L.Callback):
    """Writes every batch this rank trains on (each image's pixel sum) to images-rank<R>.json."""

    def __init__(self, folder: str) -> None:
        self.folder, self.sums = Path(folder), []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.sums.append(batch[0].flatten(1).sum(1).tolist())

    def on_train_end(self, trainer, pl_module) -> None:
        (self.folder / f"images-rank{trainer.global_rank}.json").write_text(json.dumps(self.sums))


@pytest.mark.slow
def test_two_ddp_processes_stream_disjoint_samples(tmp_path, data_dir):
    path = prepared(tmp_path, n=16)
    tiny = [o for o in TINY["dcgan"] if not o.startswith("evaluation.")]
    args = [*STREAM, *tiny, f"data.path={path}", "data.image_size=8",
            "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
            "trainer.enable_progress_bar=false", "trainer.max_steps=2", "data.workers=1",
            "+callbacks.record._target_=test_prepared_data.RecordImages",
            f"+callbacks.record.folder={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}",
            f"paths.data_dir={data_dir}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"images-rank{r}.json").read_text()) for r in (0, 1)]
    assert [len(r) for r in ranks] == [2, 2] and all(len(b) == 4 for r in ranks for b in r)
    # 16 images, 8 per rank: the two steps of both ranks are the whole set, each image once.
    seen = [s for r in ranks for batch in r for s in batch]
    real = torch.from_numpy(np.stack([np.asarray(Image.open(p)) for p in sorted(
        (tmp_path / "src").rglob("*.png"))])).float().div(127.5).sub(1).permute(0, 3, 1, 2)
    assert sorted(round(s, 2) for s in seen) == sorted(
        round(s, 2) for s in real.flatten(1).sum(1).tolist())
