"""Your own images: every image file under a folder, resized and center-cropped to a square,
prepared once into a cache that later runs read in seconds."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ganlab.data.base import Batch
from ganlab.data.images import ImageDataModule, _check_num_classes
from ganlab.data.preparing import FORMAT, VERSION, prepare_set, report_path
from ganlab.data.source import folder_files, open_source
from ganlab.data.store import open_set, read_images
from ganlab.errors import GanlabError
from ganlab.imagefiles import IMAGE_EXTENSIONS, BadImage, DecodeOptions, decode
from ganlab.options import at_least, check
from ganlab.registry import registered

log = logging.getLogger(__name__)

LABELS = ("none", "folders")


@registered("data")
class ImageFolderDataModule(ImageDataModule):
    """Every image under ``path`` (recursively), resized (Lanczos) and center-cropped to a
    square; with ``labels=folders`` the first folder of each file's path is its class
    (classes in sorted order of the folder names; ``num_classes`` must be their number).

    The folder is decoded once (in ``workers`` processes, 0: one per CPU) into a prepared zip
    under ``cache_dir``, named by a hash of the folder's files (paths, sizes, modification
    times) and of the size options: an edited folder is prepared again, an unchanged one is
    read from the cache. Files that cannot be read are skipped and listed in the cache's
    report (``on_bad=fail``: the run stops at the first). Split "test" is the training set.
    """

    name = "image_folder"
    path_key = "data.path"  # the option that set ``path``, for error messages

    def __init__(
        self,
        path: str,
        image_size: int = 64,
        channels: int = 3,
        batch_size: int = 64,
        shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        labels: str = "none",
        cache_dir: str | None = None,
        on_bad: str = "skip",
        workers: int = 0,
        seed: int = 0,
        limit: int | None = None,
    ) -> None:
        check(labels in LABELS, "labels", labels, f"it must be one of {', '.join(LABELS)}")
        check(on_bad in ("skip", "fail"), "on_bad", on_bad, "it must be skip or fail")
        if labels == "none":
            _check_num_classes(f"image_folder {path}", num_classes, None)
        elif num_classes is None:
            raise GanlabError(f"data.labels=folders needs data.num_classes: set it to the number "
                              f"of class folders in {path}")
        super().__init__(batch_size, image_size, channels, shape, num_classes, seed, limit)
        self.path = Path(path).expanduser()
        self.labels, self.on_bad = labels, on_bad
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.workers = at_least(workers, "workers", 0) or os.cpu_count() or 1
        self.options = DecodeOptions(self.image_size, self.channels, small="upscale")

    def _read_split(self, split: str) -> Batch:
        if split == "test":
            return self._split("train")
        files = self.listing()
        if self.cache_dir is None:  # no cache asked for: prepared into a temporary folder
            with tempfile.TemporaryDirectory() as folder:
                return self._read_prepared(self._prepare(files, Path(folder) / "set.zip"))
        cache = self.cache_dir / f"{self._folder_id()}-{self._content_id(files)}.zip"
        if cache.is_file():
            log.info("image_folder: %s is unchanged; reading its prepared cache %s",
                     self.path, cache)
        else:
            self._prepare(files, cache)
            for stale in self.cache_dir.glob(f"{self._folder_id()}-*.zip"):
                if stale != cache:  # the same folder before an edit, or other size options
                    stale.unlink(missing_ok=True)
                    report_path(stale).unlink(missing_ok=True)
        return self._read_prepared(cache)

    def _prepare(self, files: list[tuple[str, int, int]], output: Path) -> Path:
        source = open_source(self.path, self.labels, self.path_key, [f for f, _, _ in files])
        if self.labels == "folders" and source.num_classes != self.num_classes:
            raise GanlabError(
                f"data.num_classes={self.num_classes} but {self.path_key}={self.path} has "
                f"{source.num_classes} class folders; set data.num_classes={source.num_classes}")
        outcome = prepare_set(source, output, self.options, "zip", self.workers, self.on_bad,
                              overwrite=True, key=self.path_key)
        if outcome.skipped:
            log.warning("image_folder: skipped %d file(s) that cannot be used (e.g. %s: %s); "
                        "see %s", len(outcome.skipped), *outcome.skipped[0], report_path(output))
        return output

    def _read_prepared(self, path: Path) -> Batch:
        stored = open_set(path, self.path_key)
        self.class_names = stored.class_names
        x, y = read_images(stored, workers=self.workers)
        log.info("image_folder: loaded %d images from %s", len(x), self.path)
        return x, y if self.labels == "folders" else None

    def _folder_id(self) -> str:
        digest = hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:8]
        return f"{self.path.resolve().name or 'root'}-{digest}"

    def _content_id(self, files: list[tuple[str, int, int]]) -> str:
        """A hash of what the cache is made from: every file's path, size and mtime, and the
        options that shape the images and labels."""
        key = [FORMAT, VERSION, files, self.options.__dict__, self.labels, self.on_bad]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]

    def listing(self) -> list[tuple[str, int, int]]:
        """(relative path, size, mtime) of every image file under ``path``, sorted;
        GanlabError if there is none."""
        key = self.path_key
        if not self.path.is_dir():
            raise GanlabError(
                f"{key} {self.path} does not exist or is not a directory; "
                f"set {key}=DIR to a folder of images"
            )
        files = folder_files(self.path)
        if not files:
            raise GanlabError(
                f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found under {self.path}; "
                f"set {key} to a folder that holds images"
            )
        return files

    def image_files(self) -> list[Path]:
        """Every image file under ``path``, sorted; GanlabError if there is none."""
        return [self.path / name for name, _, _ in self.listing()]

    def read_image(self, file: Path) -> Tensor:
        """One image file as (channels, image_size, image_size) uint8, resized and cropped."""
        try:
            pixels, _ = decode(file, self.options)
        except BadImage as err:
            raise GanlabError(f"cannot read image {file} ({err}); delete or re-save it") from None
        return torch.from_numpy(pixels)
