"""Converting a source (ganlab.data.source) once into a prepared data set: every image decoded
over processes (ganlab.imagefiles), stored as uint8 in one of two layouts, with its labels, a
content hash and a report of the files that were skipped or converted.

- ``zip``: StyleGAN2-ADA's / StyleGAN3's / R3GAN's layout: ``00000/img00000000.png`` ... and
  ``dataset.json`` ``{"labels": [[name, class], ...]}`` or ``{"labels": null}``; their tools
  read it as it is (they ignore the extra ``ganlab.json``).
- ``litdata``: Lightning's litdata chunks and ``index.json``, one item per image
  ``{"image": uint8 (C, H, W), "label": int (-1: none), "index": int}``: the format that
  streams from local disk or object storage.

Both carry ``ganlab.json`` (sizes, filter, crop, classes, the content hash). The output is
written under a temporary name beside it and renamed when complete, so a failed or
interrupted run leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganlab import __version__
from ganlab.data.lit import single_writer
from ganlab.data.source import DATASET_JSON, Source
from ganlab.errors import GanlabError
from ganlab.imagefiles import DecodeOptions, decode_task, start_worker, stop_worker
from ganlab.rundir import write_text_atomic

log = logging.getLogger(__name__)

FORMAT, VERSION, META = "ganlab-prepared", 1, "ganlab.json"
LAYOUTS = ("zip", "litdata")
CHUNK_BYTES = "64MB"  # litdata's recommended chunk size
# Below this many files per process, starting processes costs more than it saves.
_FILES_PER_PROCESS = 256


class ContentHash:
    """sha256 of a data set's content: its image shape, then each image's uint8 bytes and its
    label (int64, -1 for none) in order; equal for equal content in either layout."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self._sha = hashlib.sha256(f"{FORMAT}-v{VERSION} {tuple(shape)}".encode())

    def update(self, pixels: np.ndarray, label: int | None) -> None:
        self._sha.update(pixels.tobytes())
        self._sha.update(np.int64(-1 if label is None else label).tobytes())

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def decoded(source: Source, options: DecodeOptions, workers: int, want_png: bool = False
            ) -> Iterator[tuple[np.ndarray | None, bytes | None, str | None]]:
    """(pixels, PNG bytes, note) of each file of ``source`` in order, or (None, None,
    reason); decoded in ``workers`` processes (started only when there is work for them)."""
    tasks = [source.locate(n) for n in source.names]
    workers = max(1, min(workers, len(tasks) // _FILES_PER_PROCESS))
    zip_path = str(source.path) if source.is_zip else None
    if workers == 1:
        start_worker(options, zip_path, want_png)
        try:
            yield from map(decode_task, tasks)
        finally:
            stop_worker()
        return
    # fork on Linux, as torch's DataLoader does: the children run only Pillow and NumPy, while a
    # spawned child re-imports the parent's __main__ (a training script: torch, Lightning) and
    # took over 60 s to start on a loaded 2-core machine (scripts/data_bench.py), 8x the
    # decoding itself. spawn elsewhere (fork is unsafe on macOS, absent on Windows).
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with context.Pool(workers, start_worker, (options, zip_path, want_png)) as pool:
        yield from pool.imap(decode_task, tasks, chunksize=16)


class Progress:
    """Images done, images/s and the time left: a bar on a terminal, else a log line every
    ``interval`` seconds."""

    def __init__(self, total: int, what: str, enabled: bool = True, interval: float = 10) -> None:
        self.total, self.what, self.done, self.interval = total, what, 0, interval
        self.start = self._last = time.perf_counter()
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=what, unit="img", smoothing=0.1)
        self.enabled = enabled

    def step(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update()
            return
        now = time.perf_counter()
        if self.enabled and now - self._last >= self.interval:
            self._last = now
            rate = self.done / (now - self.start)
            log.info("%s: %d/%d images, %.0f images/s, %.0f s left", self.what, self.done,
                     self.total, rate, (self.total - self.done) / max(rate, 1e-9))

    def close(self) -> float:
        if self.bar is not None:
            self.bar.close()
        return time.perf_counter() - self.start


class _ZipWriter:
    def __init__(self, path: Path) -> None:
        self.archive = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED)  # PNGs: compressed enough
        self.pairs: list[list[Any]] = []

    def add(self, i: int, pixels: np.ndarray, png: bytes, label: int | None) -> None:
        name = f"{i // 1000:05d}/img{i:08d}.png"  # dataset_tool.py's names
        self.archive.writestr(name, png)
        self.pairs.append([name, label])

    def finish(self, meta: dict[str, Any]) -> None:
        labelled = meta["num_classes"] is not None
        self.archive.writestr(DATASET_JSON, json.dumps({"labels": self.pairs if labelled else None}))
        self.archive.writestr(META, json.dumps(meta, indent=1))
        self.archive.close()

    def abort(self) -> None:
        self.archive.close()


class _LitdataWriter:
    def __init__(self, path: Path) -> None:
        from litdata.streaming.writer import BinaryWriter

        self.path = path
        with single_writer():
            self.writer = BinaryWriter(str(path), chunk_bytes=CHUNK_BYTES)

    def add(self, i: int, pixels: np.ndarray, png: bytes | None, label: int | None) -> None:
        self.writer.add_item(i, {"image": pixels, "label": -1 if label is None else label,
                                 "index": i})

    def finish(self, meta: dict[str, Any]) -> None:
        import litdata

        with single_writer():
            self.writer.done()
            self.writer.merge()
        (self.path / META).write_text(json.dumps({**meta, "litdata": litdata.__version__}, indent=1))

    def abort(self) -> None:
        pass


@dataclass
class Outcome:
    meta: dict[str, Any]
    seconds: float
    skipped: list[tuple[str, str]] = field(default_factory=list)
    converted: list[tuple[str, str]] = field(default_factory=list)


def report_path(output: Path) -> Path:
    return output.with_name(output.name + ".report.json")


def prepare_set(source: Source, output: Path, options: DecodeOptions, layout: str,
                workers: int = 1, on_bad: str = "skip", overwrite: bool = False,
                key: str = "source", progress: bool = True) -> Outcome:
    """Write ``source`` as a prepared set at ``output`` (whole or not at all) and its report
    beside it; GanlabError for an existing output without ``overwrite``, a bad file with
    ``on_bad=fail``, or a source with no usable image."""
    output = Path(output).expanduser()
    if output.exists() and not overwrite:
        raise GanlabError(f"output={output} exists; pass overwrite=true to replace it, or "
                          "choose another output")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        outcome = _write(source, tmp, options, layout, workers, on_bad, key, progress)
        _replace(tmp, output)
    except BaseException:  # an error, Ctrl+C, a kill: nothing half-written stays
        _remove(tmp)
        raise
    report = {"source": str(source.path), "output": str(output), **outcome.meta,
              "seconds": round(outcome.seconds, 2),
              "skipped_files": [{"file": f, "reason": r} for f, r in outcome.skipped],
              "converted_files": [{"file": f, "conversion": c} for f, c in outcome.converted]}
    write_text_atomic(report_path(output), json.dumps(report, indent=1) + "\n")
    return outcome


def _write(source: Source, tmp: Path, options: DecodeOptions, layout: str, workers: int,
           on_bad: str, key: str, progress: bool) -> Outcome:
    shape = (options.channels, options.image_size, options.image_size)
    writer = _ZipWriter(tmp) if layout == "zip" else _LitdataWriter(tmp)
    content, kept = ContentHash(shape), 0
    skipped, converted = [], []
    bar = Progress(len(source.names), f"prepare {source.path.name}", progress)
    results = decoded(source, options, workers, want_png=layout == "zip")
    try:
        for i, (pixels, png, note) in enumerate(results):
            name = source.names[i]
            bar.step()
            if pixels is None:
                if on_bad == "fail":
                    raise GanlabError(f"{key}={source.path}: {name} {note}; fix or remove it, "
                                      "or pass on_bad=skip to leave such files out")
                skipped.append((name, note))
                continue
            if note:
                converted.append((name, note))
            label = None if source.labels is None else source.labels[i]
            writer.add(kept, pixels, png, label)
            content.update(pixels, label)
            kept += 1
        if kept == 0:
            first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
            raise GanlabError(f"{key}={source.path}: none of its {len(source.names)} image files "
                              f"could be used{first}; check the files")
        meta = {"format": FORMAT, "version": VERSION, "layout": layout, "images": kept,
                "image_size": options.image_size, "channels": options.channels,
                "resize": options.resize, "crop": options.crop, "small": options.small,
                "labels": source.labels_from, "num_classes": source.num_classes,
                "class_names": source.class_names, "content_sha256": content.hexdigest(),
                "skipped": len(skipped), "converted": len(converted),
                "created_by": f"ganlab {__version__}"}
        writer.finish(meta)
    except BaseException:
        writer.abort()
        raise
    finally:
        results.close()  # stops the decoding processes at once on an error
        seconds = bar.close()
    return Outcome(meta, seconds, skipped, converted)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _replace(tmp: Path, output: Path) -> None:
    """Put ``tmp`` at ``output``: one rename for a file; a folder in its place moved aside
    first (a rename cannot replace a non-empty folder) and removed after."""
    if output.is_dir() and not output.is_symlink():
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.replace(output, old)
        os.replace(tmp, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if output.exists() and tmp.is_dir():
            output.unlink()
        os.replace(tmp, output)
