"""Reading a prepared data set: its description (``open_set``, cheap) and its images as one
uint8 tensor (``read_images``: all of them, or the first ``count``).

A zip is ganlab's (``ganlab.json`` inside) or StyleGAN's dataset_tool.py output as it is
(square PNGs of one size, ``dataset.json`` labels); a litdata folder must be ganlab's.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from ganlab.data import lit  # noqa: F401 - before litdata: no version check over the network
from ganlab.data.preparing import FORMAT, META, VERSION, ContentHash, decoded
from ganlab.data.source import Source, open_source, zip_names
from ganlab.errors import GanlabError
from ganlab.imagefiles import DecodeOptions

# What ganlab's litdata items hold (index.json's "data_format"): image, label, index.
LITDATA_ITEM = ["numpy", "int", "int"]
_PREPARE = "python -m ganlab.prepare source={path} output=NEW_PATH image_size=N"


@dataclass
class StoredSet:
    path: Path
    layout: str  # zip or litdata
    images: int
    image_size: int
    channels: int
    num_classes: int | None = None
    class_names: list[str] | None = None
    content_sha256: str | None = None  # None: a zip from elsewhere, hashed when read
    meta: dict[str, Any] = field(default_factory=dict)
    source: Source | None = None  # a zip's members and labels

    @property
    def nbytes(self) -> int:
        return self.images * self.channels * self.image_size**2


def open_set(path: str | Path, key: str = "data.path") -> StoredSet:
    """The description of the prepared set at ``path``; GanlabError (one line) when it is not
    one that ganlab can read."""
    path = Path(path).expanduser()
    if not path.exists():
        raise GanlabError(f"{key}={path} does not exist; prepare a data set with "
                          f"{_PREPARE.format(path='DIR')} and set {key} to its output")
    if path.is_file():
        return _open_zip(path, key)
    if not (path / "index.json").is_file():
        raise GanlabError(f"{key}={path} is neither a zip nor a litdata folder (no index.json); "
                          f"prepare it with {_PREPARE.format(path=path)}")
    meta = _read_meta((path / META).read_text() if (path / META).is_file() else None, path, key)
    try:
        config = json.loads((path / "index.json").read_text())["config"]
    except (ValueError, KeyError, TypeError):
        config = {}
    if config.get("data_format") != LITDATA_ITEM:
        raise GanlabError(
            f"{key}={path}: its index.json (litdata {meta.get('litdata', '?')}) does not hold "
            "ganlab's items (image, label, index); prepare the set again with this version: "
            f"{_PREPARE.format(path='SOURCE')} format=litdata")
    return _described(path, "litdata", meta)


def _read_meta(text: str | None, path: Path, key: str) -> dict[str, Any]:
    if text is None:
        raise GanlabError(f"{key}={path} was not written by ganlab.prepare (no {META}); "
                          f"prepare it with {_PREPARE.format(path='SOURCE')} format=litdata")
    try:
        meta = json.loads(text)
    except ValueError:
        meta = {}
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        version = meta.get("version") if isinstance(meta, dict) else None
        raise GanlabError(
            f"{key}={path} was written by another version of ganlab.prepare (format version "
            f"{version}; this ganlab reads {VERSION}); prepare it again from its source")
    return meta


def _described(path: Path, layout: str, meta: dict[str, Any], source: Source | None = None
               ) -> StoredSet:
    return StoredSet(path, layout, int(meta["images"]), int(meta["image_size"]),
                     int(meta["channels"]), meta.get("num_classes"), meta.get("class_names"),
                     meta.get("content_sha256"), meta, source)


def _open_zip(path: Path, key: str) -> StoredSet:
    names = zip_names(path, key)
    with zipfile.ZipFile(path) as archive:
        if META in archive.namelist():
            meta = _read_meta(archive.read(META).decode("utf-8", "replace"), path, key)
            source = open_source(path, "auto", key)
            return _described(path, "zip", meta, source)
        if not names:
            raise GanlabError(f"{key}={path} holds no images; give a prepared data set")
        with Image.open(io.BytesIO(archive.read(names[0]))) as first:
            (w, h), mode = first.size, first.mode
    if w != h or mode not in ("L", "RGB"):
        raise GanlabError(
            f"{key}={path}: its images are {w}x{h} {mode}, and ganlab reads square L or RGB "
            f"images as they are; convert it with {_PREPARE.format(path=path)}")
    source = open_source(path, "auto", key)  # dataset.json's labels, checked
    meta = {"images": len(names), "image_size": w, "channels": 1 if mode == "L" else 3,
            "num_classes": source.num_classes}
    return _described(path, "zip", meta, source)


def read_images(stored: StoredSet, count: int | None = None, workers: int = 1
                ) -> tuple[Tensor, Tensor | None]:
    """The first ``count`` images (None: all) as (N, C, S, S) uint8 and their int64 labels
    (None: unlabelled), in stored order. Sets the content hash of a zip from elsewhere."""
    n = stored.images if count is None else min(count, stored.images)
    if stored.layout == "litdata":
        return _read_litdata(stored, n)
    return _read_zip(stored, n, workers)


def _read_zip(stored: StoredSet, n: int, workers: int) -> tuple[Tensor, Tensor | None]:
    source = stored.source
    part = Source(source.path, True, source.names[:n], None if source.labels is None
                  else source.labels[:n])
    size, channels = stored.image_size, stored.channels
    x = torch.empty(n, channels, size, size, dtype=torch.uint8)
    content = ContentHash((channels, size, size))
    options = DecodeOptions(size, channels, crop="none")
    for i, (pixels, _, note) in enumerate(decoded(part, options, workers)):
        name = part.names[i]
        if pixels is None:
            raise GanlabError(f"data.path={stored.path}: {name} {note}; convert the set with "
                              f"{_PREPARE.format(path=stored.path)}")
        x[i].numpy()[...] = pixels  # pixels may be read-only (decoded from a buffer)
        content.update(pixels, None if part.labels is None else part.labels[i])
    if stored.content_sha256 is None and n == stored.images:
        stored.content_sha256 = content.hexdigest()
    labels = None if part.labels is None else torch.tensor(part.labels, dtype=torch.int64)
    return x, labels


def _read_litdata(stored: StoredSet, n: int) -> tuple[Tensor, Tensor | None]:
    from litdata import StreamingDataLoader

    size, channels = stored.image_size, stored.channels
    x = torch.empty(n, channels, size, size, dtype=torch.uint8)
    y = torch.empty(n, dtype=torch.int64)
    dataset = open_dataset(stored, shuffle=False)
    if n < stored.images:
        dataset = dataset.subset(range(n))
    loader = StreamingDataLoader(dataset, batch_size=1024, num_workers=0)
    for batch in loader:  # the items' own index places them, whatever the loader's order
        index = batch["index"]
        x[index] = batch["image"]
        y[index] = batch["label"]
    return x, None if stored.num_classes is None else y


def open_dataset(stored: StoredSet, **kwargs: Any) -> Any:
    """litdata's StreamingDataset of a litdata set; GanlabError when litdata cannot read it."""
    import litdata

    try:
        return litdata.StreamingDataset(str(stored.path), **kwargs)
    except Exception as err:  # whatever litdata raises for an index it cannot read
        raise GanlabError(
            f"data.path={stored.path} cannot be read by litdata {litdata.__version__} (written "
            f"with litdata {stored.meta.get('litdata', '?')}): {' '.join(str(err).split())[:200]}"
            "; prepare the set again with this version") from None

