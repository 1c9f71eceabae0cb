"""Image files to square uint8 arrays: the decoding that ``python -m ganlab.prepare`` and
``data=image_folder`` run over processes.

This module imports only Pillow and NumPy (no torch), so that the processes that decode
start in a fraction of a second. An image is decoded whole (a truncated file fails here, not
later), converted to 8-bit L or RGB (what can be converted is, and said so), and resized with
the named Pillow filter: ``crop=center`` fits the shorter side and cuts the middle
(``ImageOps.fit``), ``crop=pad`` fits the longer side and pads with black (``ImageOps.pad``).
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
FILTERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
}
CROPS = ("center", "pad")
SMALL = ("skip", "upscale")
_ALPHA_MODES = ("RGBA", "LA", "La", "RGBa", "PA")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class BadImage(Exception):
    """A file that cannot be made into a training image; the message says why."""


@dataclass(frozen=True)
class DecodeOptions:
    image_size: int
    channels: int
    resize: str = "lanczos"
    crop: str = "center"  # center, pad, or none (the image must be image_size already)
    small: str = "skip"  # images that would have to be enlarged: skip them, or upscale


def _eight_bit(image: Image.Image) -> tuple[Image.Image, str | None]:
    """``image`` as 8-bit L or RGB, and what was converted (None: nothing)."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return image, None
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "P"
    if image.mode in _ALPHA_MODES:
        # Transparent pixels as a viewer shows them: over white.
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB"), f"{mode}: alpha over white"
    if mode in _SIXTEEN_BIT:
        # Pillow's convert("L") clips 16-bit values at 255; scale 0..65535 to 0..255 instead.
        wide = np.asarray(image).astype(np.int64).clip(0, 65535)
        return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8)), "16-bit"
    if mode == "F":
        raise BadImage("floating-point pixels (mode F) are not supported")
    try:
        return image.convert("RGB"), mode
    except ValueError as err:
        raise BadImage(f"mode {mode} cannot be converted to RGB ({err})") from None


def _open(source: Path | bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        image.load()  # decode it all now: a truncated file fails here
        return image
    except UnidentifiedImageError:
        raise BadImage("not an image (Pillow cannot identify it)") from None
    except Image.DecompressionBombError as err:
        raise BadImage(f"too large ({err})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        reason = "truncated" if "truncated" in str(err) else f"cannot be decoded ({err})"
        raise BadImage(reason) from None


def decode(source: Path | bytes, options: DecodeOptions) -> tuple[np.ndarray, str | None]:
    """(C, S, S) uint8 pixels of an image file (a path or its bytes), and what was converted
    (None: nothing); BadImage when it cannot be made into one."""
    image = _open(source)
    image, note = _eight_bit(image)
    image = image.convert("L" if options.channels == 1 else "RGB")
    size, (w, h) = options.image_size, image.size
    if options.crop == "none":  # a prepared set's image, read back: it must fit already
        if (w, h) != (size, size):
            raise BadImage(f"is {w}x{h}, not {size}x{size} like the first image")
        return _chw(image), note
    short = min(w, h) if options.crop == "center" else max(w, h)
    if short < size:
        if options.small == "skip":
            raise BadImage(f"smaller than {size}x{size} ({w}x{h}); small=upscale keeps it")
        note = ", ".join(filter(None, [note, f"upscaled from {w}x{h}"]))
    method = FILTERS[options.resize]
    if options.crop == "center":
        image = ImageOps.fit(image, (size, size), method=method)
    else:
        image = ImageOps.pad(image, (size, size), method=method, color=0)
    return _chw(image), note


def _chw(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image, dtype=np.uint8)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels)


def png_bytes(pixels: np.ndarray) -> bytes:
    """(C, H, W) uint8 as PNG bytes, uncompressed as StyleGAN2-ADA's dataset_tool.py writes them
    (``compress_level=0``: fast to write and to read)."""
    array = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="png", compress_level=0)
    return buffer.getvalue()


# The decoding processes: each holds the options and, for a zip source, one open archive.
_worker: dict[str, Any] = {}


def start_worker(options: DecodeOptions, zip_path: str | None, want_png: bool) -> None:
    _worker.clear()
    _worker.update(options=options, want_png=want_png,
                   zip=zipfile.ZipFile(zip_path) if zip_path else None)


def stop_worker() -> None:
    if _worker.get("zip") is not None:
        _worker["zip"].close()
    _worker.clear()


def decode_task(name: str) -> tuple[np.ndarray | None, bytes | None, str | None]:
    """(pixels, PNG bytes or None, note) of one file of the source, or (None, None, reason)."""
    archive = _worker["zip"]
    try:
        source = archive.read(name) if archive is not None else Path(name)
        pixels, note = decode(source, _worker["options"])
    except BadImage as err:
        return None, None, str(err)
    except OSError as err:  # a file that cannot be read
        return None, None, f"cannot be read ({err.strerror or err})"
    except (zipfile.BadZipFile, zlib.error) as err:  # a damaged archive member
        return None, None, f"cannot be read ({err})"
    return pixels, png_bytes(pixels) if _worker["want_png"] else None, note
