"""A trained generator to use anywhere: ``from ganlab import Generator``.

    g = Generator.load("exports/digits")      # an export folder (python -m ganlab.export)
    g = Generator.load("outputs/.../last.ckpt")  # or a checkpoint
    images = g.sample(16, seed=0)             # (16, C, H, W) in [-1, 1]; points: data coordinates
    g.save_grid("grid.png")

An export folder is ``config.json`` (the registered network class and its plain arguments,
the latent size, classes, the data space) and ``model.safetensors`` (the weights, with their
sha256 in config.json). Loading one imports neither Lightning nor Hydra, and builds the
network only through ganlab.registry: nothing named in a file is ever called. A checkpoint
is read by ganlab.checkpoint under the same rule.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganlab import registry
from ganlab.errors import GanlabError
from ganlab.stored import REFUSED_HINT, StoredGenerator, evaluation_settings, stored_value

CONFIG, WEIGHTS = "config.json", "model.safetensors"
FORMAT = "ganlab-generator"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _field(config: dict, key: str, kinds: tuple[type, ...], where: str) -> Any:
    value = config.get(key)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise registry.Refused(f"{where} {key} is not allowed (a {type(value).__name__})")
    if key == "data":  # a data node: its class is looked up only when it is built
        registry.check_plain({k: v for k, v in value.items() if k != "_target_"}, key)
    else:
        registry.check_plain(value, key)
    return value


def load_export(folder: str | Path, key: str = "checkpoint") -> StoredGenerator:
    """The generator of an export folder; GanlabError (one line, naming ``key=folder``) for a
    missing or altered file, a class outside the registry, a non-plain value, or weights that
    do not fit."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise GanlabError(f"{key}={folder}: {name} is missing; export the run again "
                              "(python -m ganlab.export)")
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise GanlabError(f"{key}={folder}: {CONFIG} is not JSON ({err})") from None
    try:
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise registry.Refused(f"{CONFIG} is not allowed (not a ganlab generator export)")
        sha = _field(config, "weights_sha256", (str,), CONFIG)
        if sha256_file(folder / WEIGHTS) != sha:
            raise GanlabError(f"{key}={folder}: {WEIGHTS} has changed since the export (its "
                              f"sha256 differs from {CONFIG}'s); export the run again")
        arguments = _field(config, "arguments", (dict,), CONFIG)
        name = _field(config, "class", (str,), CONFIG)
        if registry.lookup("network", name) is None:
            raise registry.Refused(f"{CONFIG} class={name} is not allowed (not a registered "
                                   "ganlab network; your own classes join with trust=MODULE)")
        net = registry.build("network", {"_target_": name, **arguments}, "arguments")
        samples = _field(config, "samples", (dict,), CONFIG)
        stored = StoredGenerator(
            net=net, model=_field(config, "model", (str,), CONFIG),
            latent_dim=_field(config, "latent_dim", (int, type(None)), CONFIG),
            ema=_field(config, "ema", (bool,), CONFIG),
            g_steps=_field(config, "steps", (int,), CONFIG),
            truncation=_field(config, "truncation", (int, float, type(None)), CONFIG),
            scale=float(samples.get("scale", 1.0)),
            data=_field(config, "data", (dict,), CONFIG),
            images_seen=_field(config, "images_seen", (int,), CONFIG),
            class_names=_field(config, "class_names", (list, type(None)), CONFIG),
            evaluation=evaluation_settings(config),
            seed=stored_value(config, "seed", int, 0))
    except registry.Refused as err:
        raise GanlabError(f"{key}={folder}: {err}; {REFUSED_HINT}") from None
    try:
        net.load_state_dict(load_file(folder / WEIGHTS))
    except (RuntimeError, SafetensorError) as err:
        raise GanlabError(f"{key}={folder}: {WEIGHTS} does not fit its {CONFIG}: "
                          f"{str(err).splitlines()[0][:200]}") from None
    net.eval()
    return stored


def load_generator(path: str | Path, key: str = "checkpoint") -> StoredGenerator:
    """An export folder's or a checkpoint file's generator (see ganlab.checkpoint)."""
    path = Path(path).expanduser()
    if path.is_dir():
        return load_export(path, key)
    from ganlab.checkpoint import generator_from_checkpoint

    return generator_from_checkpoint(path, key)


class Generator:
    """Samples from a trained generator: images in [-1, 1] (or 2-D points in data
    coordinates), latent walks, translations (an image-to-image model), pictures."""

    def __init__(self, stored: StoredGenerator) -> None:
        self.stored = stored
        self.net = stored.net

    @classmethod
    def load(cls, path: str | Path, trust: str | list[str] | None = None) -> Generator:
        """An export folder or a checkpoint; ``trust``: modules of yours whose network
        classes the file may name (ganlab.registry)."""
        registry.trust(trust)
        return cls(load_generator(path, key="path"))

    @property
    def latent_dim(self) -> int | None:
        return self.stored.latent_dim

    @property
    def num_classes(self) -> int | None:
        return self.stored.num_classes

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> Generator:
        self.net.to(device)
        return self

    def latents(self, n: int, seed: int = 0) -> Tensor:
        """The (n, latent_dim) latents a seed gives (on the CPU, so any device agrees)."""
        if self.latent_dim is None:
            raise GanlabError(f"{self.stored.model} translates images and has no latent "
                              "space; use translate(images)")
        return torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def sample(self, n: int = 64, seed: int = 0, labels: Tensor | list[int] | None = None,
               truncation: float | None = None, z: Tensor | None = None,
               batch_size: int = 256) -> Tensor:
        """``n`` samples (or one per row of ``z``) on the CPU; ``labels`` (n,) for a
        conditional model (default: classes in turn); ``truncation`` psi for a generator
        with a mapping network (default: the model's, ``stored.truncation``)."""
        z = self.latents(n, seed) if z is None else z
        if self.num_classes and labels is None:
            labels = torch.arange(len(z)) % self.num_classes
        labels = None if labels is None else torch.as_tensor(labels, dtype=torch.long)
        psi = self.stored.truncation if truncation is None else truncation
        out = generate(self.net, self.latent_dim, len(z), seed, batch_size, labels=labels, z=z,
                       truncation=psi if _takes_truncation(self.net) else None)
        return out * self.stored.scale if out.dim() == 2 else out

    def interpolate(self, steps: int = 8, paths: int = 1, seed: int = 0,
                    **sample_options: Any) -> Tensor:
        """``paths`` spherical walks of ``steps`` samples between random latents,
        (paths * steps, ...) in walk order."""
        from ganlab.latent import slerp

        ends = self.latents(2 * paths, seed)
        z = torch.cat([slerp(ends[2 * i], ends[2 * i + 1], steps) for i in range(paths)])
        return self.sample(z=z, seed=seed, **sample_options)

    @torch.no_grad()
    def translate(self, images: Tensor, direction: str = "a2b") -> Tensor:
        """Images (B, C, H, W) in [-1, 1] translated by an image-to-image model."""
        net = getattr(self.net, direction, None)
        if self.latent_dim is not None or net is None:
            raise GanlabError(f"translate needs an image-to-image model with direction a2b "
                              f"or b2a; this is {self.stored.model}")
        return net(images.to(self.device)).float().cpu()

    @staticmethod
    def to_uint8(images: Tensor) -> Tensor:
        """[-1, 1] images -> uint8 in [0, 255], same shape."""
        return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)

    def to_images(self, images: Tensor) -> list[Any]:
        """[-1, 1] images (N, C, H, W) -> a list of PIL images."""
        import torchvision.transforms.functional as TF

        return [TF.to_pil_image(image) for image in self.to_uint8(images.cpu())]

    def save_grid(self, path: str | Path, n: int = 64, seed: int = 0, **options: Any) -> Path:
        """A grid of ``n`` samples (a scatter plot for 2-D points) written to ``path``."""
        from ganlab.render import write_output

        samples = self.sample(n, seed=seed, **options)
        nrow = max(1, n // self.num_classes) if self.num_classes else None
        return write_output(samples, Path(path), nrow=nrow)


@torch.no_grad()
def generate(
    generator: nn.Module,
    latent_dim: int,
    n: int,
    seed: int,
    batch_size: int = 1024,
    labels: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    truncation: float | None = None,
) -> torch.Tensor:
    """n samples for a fixed seed (or for the given latents ``z``), in batches on G's device
    with G in eval mode (its mode is restored after), returned on the CPU. ``labels`` (n,)
    for a conditional G; ``truncation``: psi for a G with a mapping network (stylegan)."""
    from ganlab.nets.layers import eval_mode

    kwargs = {} if truncation is None else {"truncation": truncation}
    device = next(generator.parameters()).device
    if z is None:
        z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    out = []
    with eval_mode(generator):
        for i in range(0, n, batch_size):
            args = [z[i : i + batch_size].to(device)]
            if labels is not None:
                args.append(labels[i : i + batch_size].to(device))
            out.append(generator(*args, **kwargs).float().cpu())
    return torch.cat(out)


def _takes_truncation(net: nn.Module) -> bool:
    import inspect

    return "truncation" in inspect.signature(net.forward).parameters
