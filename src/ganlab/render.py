"""Pictures of a model's output: image grids, 2-D scatter plots, translation grids.

A renderer is prepared once with fixed inputs (a seeded latent batch, held-out images), so
every picture of a run shows the same inputs; ``render(module)`` returns the picture to save
as a file and the images to send to TensorBoard. ``renderer_for`` picks one by what the
module can do (``samples_from_noise``, ``translates``) and the data's sample shape.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision.utils import make_grid

from ganlab.errors import GanlabError
from ganlab.latent import slerp

REVERSE = {"a2b": "b2a", "b2a": "a2b"}


def image_grid(images: Tensor, nrow: int = 8) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> (C, H', W') grid in [0, 1]."""
    return make_grid(images.float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1))


def scatter_png(fake: np.ndarray, real: np.ndarray | None = None, title: str = "") -> np.ndarray:
    """Generated (and real) 2-D points on one plot, as an (H, W, 3) uint8 image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=4, c="tab:blue", alpha=0.4, label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=4, c="tab:red", alpha=0.4, label="generated")
    lim = 1.15 * float(np.abs(real if real is not None else fake).max())
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


Picture = Tensor | np.ndarray  # (C, H, W) in [0, 1], or (H, W, 3) uint8


class NoiseGrid:
    """G's images for a fixed latent batch (a row per class for a conditional model, the
    same z down each column) and 4 spherical latent paths of 8 steps."""

    def __init__(self, module: Any, num_images: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        k, dim = module.num_classes, module.latent_dim
        self.nrow, self.y = 8, None
        if k:
            self.nrow = max(1, num_images // k)
            self.z = torch.randn(self.nrow, dim, generator=g).repeat(k, 1)
            self.y = torch.arange(k).repeat_interleave(self.nrow)
        else:
            self.z = torch.randn(num_images, dim, generator=g)
        ends = torch.randn(8, dim, generator=g)
        self.strip = torch.cat([slerp(ends[2 * i], ends[2 * i + 1], 8) for i in range(4)])

    def render(self, module: Any, step: int, with_extras: bool) -> tuple[Picture, dict]:
        grid = image_grid(module.generate(self.z, self.y).cpu(), nrow=self.nrow)
        extras = {"samples/grid": grid}
        if with_extras:
            y = None if self.y is None else torch.zeros(len(self.strip), dtype=torch.long)
            strip = module.generate(self.strip, y).cpu()
            extras["samples/interpolation"] = image_grid(strip, nrow=8)
        return grid, extras


class PointScatter:
    """Generated points for a fixed latent batch over the same real points, in data space."""

    def __init__(self, module: Any, datamodule: Any, num_points: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.z = torch.randn(num_points, module.latent_dim, generator=g)
        self.datamodule = datamodule
        real, _ = datamodule.tensors("train")
        self.real = datamodule.denormalize(real[:num_points]).numpy()

    def render(self, module: Any, step: int, with_extras: bool) -> tuple[Picture, dict]:
        fake = self.datamodule.denormalize(module.generate(self.z).cpu()).numpy()
        picture = scatter_png(fake, self.real, title=f"step {step}")
        return picture, {"samples/scatter": picture}


class TranslationGrid:
    """Fixed held-out images of each domain, translated and translated back: rows real A,
    A->B, A->B->A above rows real B, B->A, B->A->B (``samples/a2b``, ``samples/b2a``)."""

    def __init__(self, datamodule: Any, num_images: int) -> None:
        a, b = datamodule.tensors("test")
        self.images = {"a2b": a[:num_images], "b2a": b[:num_images]}

    def render(self, module: Any, step: int, with_extras: bool) -> tuple[Picture, dict]:
        grids = {}
        for direction, real in self.images.items():
            fake = module.translate(real, direction)
            back = module.translate(fake, REVERSE[direction]).cpu()
            grids[f"samples/{direction}"] = image_grid(
                torch.cat([real, fake.cpu(), back]), nrow=len(real))
        return torch.cat(list(grids.values()), dim=1), grids  # (C, H_a2b + H_b2a, W)


def renderer_for(module: Any, datamodule: Any, num_images: int, num_points: int,
                 num_translations: int, seed: int) -> Any:
    if module.translates:
        return TranslationGrid(datamodule, num_translations)
    if not module.samples_from_noise:
        return None
    if len(datamodule.shape) == 1:
        return PointScatter(module, datamodule, num_points, seed)
    return NoiseGrid(module, num_images, seed)


def check_output(output: str | Path) -> Path:
    """The output path, checked before any work: suffix, directory, writable."""
    output = Path(output)
    if output.suffix not in (".npz", ".png"):
        raise GanlabError(f"output={output}: the file name must end in .npz or .png")
    if not output.parent.is_dir():
        raise GanlabError(f"output={output}: directory {output.parent} does not exist")
    if output.is_dir():
        raise GanlabError(f"output={output} is a directory; give a file name")
    try:  # an unnamed temporary file: nothing is left behind, an existing file is untouched
        tempfile.TemporaryFile(dir=output.parent).close()
    except OSError as err:
        raise GanlabError(
            f"output={output}: cannot write in {output.parent}: {err.strerror}"
        ) from None
    return output


def write_output(
    samples: torch.Tensor,
    output: str | Path,
    labels: torch.Tensor | None = None,
    nrow: int | None = None,
) -> Path:
    """Samples to ``output``: ``.npz`` (array ``samples``, and ``labels``), or ``.png`` (a grid
    of ``nrow`` images a row, or a scatter plot of 2-D points)."""
    output = check_output(output)
    try:
        if output.suffix == ".npz":
            arrays = {"samples": samples.numpy().astype(np.float32)}
            if labels is not None:
                arrays["labels"] = labels.numpy().astype(np.int64)
            np.savez(output, **arrays)
        elif samples.dim() == 2:
            from PIL import Image

            Image.fromarray(scatter_png(samples.numpy())).save(output)
        else:
            from torchvision.utils import save_image

            nrow = nrow or max(1, int(len(samples) ** 0.5))
            save_image(image_grid(samples, nrow=nrow), output)
    except OSError as err:
        raise GanlabError(f"output={output}: cannot write: {err.strerror or err}") from None
    return output
