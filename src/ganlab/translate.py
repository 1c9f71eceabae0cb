"""Translate a folder of images with a CycleGAN checkpoint (``python -m ganlab.sample``):

    python -m ganlab.sample checkpoint=PATH input=DIR output=DIR [direction=a2b|b2a]

Every image under ``input`` (recursively; read, resized and center-cropped as
``data=image_folder`` reads them, to the model's image size and channels) is translated and
written to ``output`` as a PNG of the model's image size, at the same relative path with
the suffix ``.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torchvision.transforms.functional as TF

from ganlab.cyclegan import DIRECTIONS
from ganlab.data.folder import ImageFolderDataModule
from ganlab.data.images import to_model_space
from ganlab.errors import GanlabError
from ganlab.generator import load_generator


def _output_names(files: list[Path], root: Path, output: Path) -> list[Path]:
    names = [output / f.relative_to(root).with_suffix(".png") for f in files]
    seen: dict[Path, Path] = {}
    for file, name in zip(files, names, strict=True):
        if name in seen:
            raise GanlabError(
                f"input={root}: {seen[name].name} and {file.name} would both be written to "
                f"{name}; rename one of them"
            )
        seen[name] = file
    return names


def translate_folder(args: Any) -> tuple[int, Path]:
    """Translate ``args.input`` into ``args.output`` (``args``: the sampling command's
    arguments: checkpoint, input, output, direction, device, batch_size); returns the number
    of images and the output folder. GanlabError (one line) for anything that stops it."""
    if args.direction not in DIRECTIONS:
        raise GanlabError(
            f"direction={args.direction!r} is not allowed: it must be one of {', '.join(DIRECTIONS)}"
        )
    stored = load_generator(args.checkpoint)
    generators = stored.net
    if not all(hasattr(generators, d) for d in DIRECTIONS):
        raise GanlabError(
            f"checkpoint={args.checkpoint} holds a {stored.model} model; translating input= "
            "images needs a model=cyclegan checkpoint"
        )
    folder = ImageFolderDataModule(
        args.input, image_size=generators.image_size, channels=generators.channels
    )
    folder.path_key = "input"
    files = folder.image_files()
    output = Path(args.output).expanduser()
    if output.suffix.lower() in (".png", ".npz"):
        raise GanlabError(
            f"output={output}: with input=, output is a folder for the translated images"
        )
    if output.resolve() == folder.path.resolve():
        raise GanlabError(f"output={output} is the input folder; choose another folder")
    names = _output_names(files, folder.path, output)
    net = getattr(generators, args.direction).to(args.device)
    try:
        output.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            for i in range(0, len(files), args.batch_size):
                part = files[i : i + args.batch_size]
                x = to_model_space(torch.stack([folder.read_image(f) for f in part]))
                y = net(x.to(args.device)).float().cpu()  # (B, C, S, S) in [-1, 1]
                images = ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
                for image, name in zip(images, names[i : i + args.batch_size], strict=True):
                    name.parent.mkdir(parents=True, exist_ok=True)
                    TF.to_pil_image(image).save(name)
    except OSError as err:
        raise GanlabError(f"output={output}: cannot write: {err.strerror or err}") from None
    return len(files), output
