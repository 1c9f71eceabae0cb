"""Sample from a trained generator.

    python -m ganlab.sample checkpoint=PATH num_samples=N output=FILE [seed=S]

``output`` ending in ``.npz`` writes the array ``samples`` (float32; images as N,C,H,W in
[-1, 1], 2-D data as N,2 in data coordinates); ending in ``.png`` writes an image grid
(images) or a scatter plot (points). ``truncation=PSI`` applies the truncation trick of a
StyleGAN checkpoint (default: the model's ``model.truncation``, 0.7). A CycleGAN checkpoint
translates a folder instead:

    python -m ganlab.sample checkpoint=PATH input=DIR output=DIR [direction=a2b|b2a]

The checkpoint is data (ganlab.checkpoint): read with ``torch.load(weights_only=True)``, its
generator built only from ganlab's registry of network classes with plain arguments, so
loading a downloaded checkpoint runs no code. ``trust=[MODULE,...]`` lets your own network
classes (defined in MODULE) be built too.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ganlab import registry
from ganlab.cli import arg, name_list, run_command
from ganlab.errors import GanlabError
from ganlab.generator import generate
from ganlab.render import check_output, write_output

if TYPE_CHECKING:  # imported in sample(): Lightning takes seconds, --help should not wait
    from ganlab.stored import StoredGenerator


@dataclass
class SampleArgs:
    checkpoint: str = arg(help="the checkpoint (.ckpt) to sample from", metavar="PATH")
    num_samples: int = arg(64, "how many samples (latent paths, with interpolate)")
    output: str = arg("samples.png", ".npz (array `samples`) or .png file; with input: a folder")
    seed: int = arg(0, "seed of the latents")
    batch_size: int = arg(1024, "samples per forward pass")
    device: str = arg("cpu", "torch device to run the generator on, e.g. cuda")
    labels: list[int] | None = arg(None, "conditional models: one class per sample")
    class_id: int | None = arg(None, "conditional models: every sample of this class")
    interpolate: int = arg(0, ">= 2: latent paths of this many steps; 0: off")
    input: str | None = arg(None, "image-to-image models: translate this folder")
    direction: str = arg("a2b", "with input: translate from domain A to B (a2b) or b2a")
    truncation: float | None = arg(
        None, "stylegan: truncation psi (1: none); null: model.truncation"
    )
    # Any: OmegaConf takes both trust=my_module (a string) and trust=[a,b] (a list) for it;
    # check_args makes it a list.
    trust: Any = arg(None, "your modules (m or [a,b]) whose network classes may be loaded")


def check_args(args: SampleArgs) -> None:
    """The checks that the keys' types do not make: ranges, the device, trust as a list."""
    args.trust = name_list("trust", args.trust)
    if args.num_samples < 1:
        raise GanlabError(f"num_samples={args.num_samples} must be >= 1")
    if args.batch_size < 1:
        raise GanlabError(f"batch_size={args.batch_size} must be >= 1")
    if args.truncation is not None and not args.truncation >= 0:
        raise GanlabError(
            f"truncation={args.truncation} must be >= 0 (1: none, 0: the average image)"
        )
    try:
        torch.empty(0, device=args.device)
    except (RuntimeError, AssertionError) as err:  # unknown type, or not built/present here
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GanlabError(f"device={args.device!r} cannot be used: {first}") from None


def sampling_truncation(args: SampleArgs, stored: StoredGenerator) -> float | None:
    """The truncation psi to sample with: ``args.truncation``, else the model's default."""
    if args.truncation is None:
        return stored.truncation
    if "truncation" not in inspect.signature(stored.net.forward).parameters:
        raise GanlabError(
            f"truncation={args.truncation} needs a generator with a mapping network "
            f"(model=stylegan); this checkpoint's model is {stored.model}"
        )
    return args.truncation


def sample_labels(args: SampleArgs, num_classes: int | None, n: int) -> torch.Tensor | None:
    """The labels to sample: given, one class, or a balanced sweep (class-sorted rows)."""
    if num_classes is None:
        if args.labels is not None or args.class_id is not None:
            raise GanlabError("labels/class_id need a conditional model; this one is not")
        return None
    if args.labels is not None:
        labels = torch.tensor(args.labels, dtype=torch.long)
    elif args.class_id is not None:
        labels = torch.full((n,), args.class_id, dtype=torch.long)
    else:
        labels = torch.arange(n) * num_classes // n  # 0 0 .. 1 1 .. : one class per row
    bad = [int(v) for v in labels if not 0 <= v < num_classes]
    if bad:
        raise GanlabError(
            f"class {bad[0]} does not exist: this model has classes 0..{num_classes - 1}"
        )
    return labels


def interpolation_latents(n: int, steps: int, latent_dim: int, seed: int) -> torch.Tensor:
    """n spherical paths of ``steps`` latents between random pairs: (n * steps, latent_dim)."""
    from ganlab.latent import slerp

    ends = torch.randn(2 * n, latent_dim, generator=torch.Generator().manual_seed(seed))
    return torch.cat([slerp(ends[2 * i], ends[2 * i + 1], steps) for i in range(n)])


def to_data_space(samples: torch.Tensor, scale: float) -> torch.Tensor:
    """Points are generated in [-1, 1] and scaled back by the data set's ``scale``."""
    if samples.dim() == 2:
        return samples * scale
    return samples


def sample(args: SampleArgs) -> int:
    """The command's body: samples (or translated images) written to ``args.output``."""
    from ganlab.generator import load_generator

    check_args(args)
    registry.trust(args.trust)
    if args.input is not None:  # image-to-image translation (model=cyclegan)
        from ganlab.translate import translate_folder

        count, folder = translate_folder(args)
        print(f"wrote {count} translated images ({args.direction}) to {folder}")
        return 0
    check_output(args.output)
    stored = load_generator(args.checkpoint)
    generator = stored.net
    if stored.latent_dim is None:
        raise GanlabError(
            f"checkpoint={args.checkpoint} holds a {stored.model} model, "
            "which translates images: pass input=DIR output=DIR [direction=a2b|b2a]"
        )
    latent_dim = stored.latent_dim
    truncation = sampling_truncation(args, stored)
    n, z, nrow = args.num_samples, None, None
    if args.interpolate == 1 or args.interpolate < 0:
        raise GanlabError(f"interpolate={args.interpolate} must be 0 (off) or >= 2 steps")
    if args.labels is not None:
        n = len(args.labels)
    if args.interpolate:
        z = interpolation_latents(n, args.interpolate, latent_dim, args.seed)
        nrow = args.interpolate
    labels = sample_labels(args, getattr(generator, "num_classes", None), n)
    if labels is not None and args.interpolate:
        labels = labels.repeat_interleave(args.interpolate)  # one class along each path
    elif labels is not None and args.labels is None and args.class_id is None:
        nrow = max(1, n // int(generator.num_classes))
    total = n * max(1, args.interpolate)
    samples = generate(
        generator.to(args.device),
        latent_dim,
        total,
        args.seed,
        args.batch_size,
        labels=labels,
        z=z,
        truncation=truncation,
    )
    path = write_output(to_data_space(samples, stored.scale), args.output, labels, nrow)
    print(f"wrote {len(samples)} samples to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(
        SampleArgs,
        sample,
        argv,
        prog="python -m ganlab.sample",
        summary="Sample from a trained generator: output=FILE.npz or FILE.png. With a CycleGAN\n"
        "checkpoint, translate a folder instead: input=DIR output=DIR [direction=a2b|b2a].",
    )


if __name__ == "__main__":
    sys.exit(main())
