"""Your own images: every image file under a folder, resized and center-cropped to a square."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor

from ganlab.data.base import Batch
from ganlab.data.images import IMAGE_EXTENSIONS, ImageDataModule, _check_num_classes
from ganlab.errors import GanlabError
from ganlab.registry import registered

log = logging.getLogger(__name__)


@registered("data")
class ImageFolderDataModule(ImageDataModule):
    """Every image under ``path`` (recursively), resized and center-cropped to a square.

    There are no labels and no held-out images: split "test" returns the training images.
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
        seed: int = 0,
        limit: int | None = None,
    ) -> None:
        _check_num_classes(f"image_folder {path}", num_classes, None)
        super().__init__(batch_size, image_size, channels, shape, num_classes, seed, limit)
        self.path = Path(path).expanduser()

    def _read_split(self, split: str) -> Batch:
        if split == "test":
            return self._split("train")
        files = self.image_files()
        x = torch.stack([self.read_image(f) for f in files])
        log.info("image_folder: loaded %d images from %s", len(files), self.path)
        return x, None

    def image_files(self) -> list[Path]:
        """Every image file under ``path``, sorted; GanlabError if there is none."""
        key = self.path_key
        if not self.path.is_dir():
            raise GanlabError(
                f"{key} {self.path} does not exist or is not a directory; "
                f"set {key}=DIR to a folder of images"
            )
        files = sorted(
            p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        if not files:
            raise GanlabError(
                f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found under {self.path}; "
                f"set {key} to a folder that holds images"
            )
        return files

    def read_image(self, file: Path) -> Tensor:
        """One image file as (channels, image_size, image_size) uint8, resized and cropped."""
        try:
            with Image.open(file) as image:
                image = image.convert("L" if self.channels == 1 else "RGB")
        except OSError as err:  # PIL's UnidentifiedImageError and truncated files
            raise GanlabError(
                f"cannot read image {file} ({type(err).__name__}); delete or re-save it"
            ) from err
        image = TF.center_crop(TF.resize(image, self.image_size), self.image_size)
        return TF.pil_to_tensor(image)
