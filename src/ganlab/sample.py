"""Sample from a trained generator.

    python -m ganlab.sample checkpoint=PATH num_samples=N output=FILE [seed=S]

``output`` ending in ``.npz`` writes the array ``samples`` (float32; images as N,C,H,W in
[-1, 1], 2-D data as N,2 in data coordinates); ending in ``.png`` writes an image grid
(images) or a scatter plot (points).

The checkpoint is read with ``torch.load(weights_only=True)``: it holds tensors and plain
data only (the composed config included), so loading a downloaded checkpoint runs no code.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from ganlab.errors import GanlabError


@dataclass
class SampleArgs:
    checkpoint: str = "???"
    num_samples: int = 64
    output: str = "samples.png"
    seed: int = 0
    batch_size: int = 1024
    device: str = "cpu"


def parse_args(argv: list[str]) -> SampleArgs:
    """key=value arguments, typed and checked against SampleArgs."""
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise GanlabError(
            f"argument {bad[0]!r} is not key=value; keys: checkpoint, num_samples, "
            "output, seed, batch_size, device"
        )
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(SampleArgs), OmegaConf.from_dotlist(argv))
        args: SampleArgs = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        raise GanlabError(
            f"{key}: {str(err).splitlines()[0]}" if key else str(err).splitlines()[0]
        ) from None
    if args.num_samples < 1:
        raise GanlabError(f"num_samples={args.num_samples} must be >= 1")
    if args.batch_size < 1:
        raise GanlabError(f"batch_size={args.batch_size} must be >= 1")
    return args


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A ganlab checkpoint as plain data; GanlabError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise GanlabError(f"checkpoint={path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupt, or holding pickled objects
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GanlabError(f"checkpoint={path} cannot be read safely: {first}") from None
    if not isinstance(ckpt, dict) or "ganlab" not in ckpt or "state_dict" not in ckpt:
        raise GanlabError(f"checkpoint={path} is not a ganlab checkpoint (no 'ganlab' section)")
    return ckpt


def _checked_target(node: Any, what: str) -> Any:
    # The config comes from a file that may not be trusted: only ganlab's own networks
    # may be instantiated from it.
    target = str(node.get("_target_", ""))
    if not target.startswith("ganlab."):
        raise GanlabError(f"checkpoint {what} target {target!r} is not a ganlab network")
    return node


def load_generator(ckpt: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """The generator (EMA weights when the checkpoint has them) in eval mode, and the config."""
    config = ckpt["ganlab"]["config"]
    node = _checked_target(OmegaConf.create(config["model"]["generator"]), "generator")
    generator = instantiate(node)
    state = ckpt["state_dict"]
    prefix = (
        "generator_ema." if any(k.startswith("generator_ema.") for k in state) else "generator."
    )
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        generator.load_state_dict(weights)
    except RuntimeError as err:
        raise GanlabError(
            f"checkpoint weights do not fit its generator config: {str(err).splitlines()[0]}"
        ) from None
    return generator.eval(), config


@torch.no_grad()
def generate(
    generator: nn.Module,
    latent_dim: int,
    n: int,
    seed: int,
    batch_size: int = 1024,
    device: str = "cpu",
) -> torch.Tensor:
    """n samples for a fixed seed, generated in batches, returned on the CPU."""
    generator = generator.to(device)
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - i), latent_dim, generator=g)
        out.append(generator(z.to(device)).float().cpu())
    return torch.cat(out)


def to_data_space(samples: torch.Tensor, config: dict[str, Any]) -> torch.Tensor:
    """Points are generated in [-1, 1] and scaled back by the data set's ``scale``."""
    if samples.dim() == 2:
        return samples * float(config["data"].get("scale", 1.0))
    return samples


def write_output(samples: torch.Tensor, output: str | Path) -> Path:
    output = Path(output)
    if output.suffix not in (".npz", ".png"):
        raise GanlabError(f"output={output}: the file name must end in .npz or .png")
    if not output.parent.is_dir():
        raise GanlabError(f"output={output}: directory {output.parent} does not exist")
    try:
        if output.suffix == ".npz":
            np.savez(output, samples=samples.numpy().astype(np.float32))
        elif samples.dim() == 2:
            from PIL import Image

            from ganlab.callbacks.samples import scatter_png

            Image.fromarray(scatter_png(samples.numpy())).save(output)
        else:
            from torchvision.utils import save_image

            from ganlab.callbacks.samples import image_grid

            save_image(image_grid(samples, nrow=max(1, int(len(samples) ** 0.5))), output)
    except PermissionError:
        raise GanlabError(f"output={output}: permission denied") from None
    return output


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        generator, config = load_generator(load_checkpoint(args.checkpoint))
        latent_dim = int(config["model"]["latent_dim"])
        samples = generate(
            generator, latent_dim, args.num_samples, args.seed, args.batch_size, args.device
        )
        path = write_output(to_data_space(samples, config), args.output)
    except GanlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.num_samples} samples to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
