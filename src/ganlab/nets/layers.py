"""Layers shared by the discriminators: PacGAN packing, minibatch standard deviation,
spectral norm."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from weakref import WeakKeyDictionary

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ganlab.options import check


def pack_samples(x: Tensor, pack: int) -> Tensor:
    """(B, C, ...) -> (B / pack, pack * C, ...): samples ``pack * i`` to ``pack * i + pack - 1``
    concatenated along the feature / channel axis, as PacGAN's discriminator sees them
    (Lin et al. 2018). A discriminator with a ``pack`` option is built for ``pack`` times the
    input channels or features and packs its input itself."""
    if pack == 1:
        return x
    if x.shape[0] % pack:
        raise ValueError(f"a batch of {x.shape[0]} samples cannot be packed in groups of {pack}")
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, sec. 3).

    For groups of ``group_size`` samples, the std of every feature over the group, averaged
    over features and positions, is appended as one extra channel, so D can see the
    variety of a batch: the practical form of "minibatch discrimination" against mode
    collapse. Works on (B, C, H, W) and (B, F) inputs.
    """

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        g = min(self.group_size, b)
        if b % g:  # a batch that does not split into groups: one group of all samples
            g = b
        y = x.reshape(g, b // g, *x.shape[1:])  # (G, B/G, ...): std across the G members
        std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # (B/G, ...)
        std = std.flatten(1).mean(1)  # (B/G,)
        std = std.repeat(g)  # member i of every group gets its group's value
        shape = (b, 1, *x.shape[2:])
        return torch.cat([x, std.view(b, *([1] * (x.dim() - 1))).expand(shape)], dim=1)


@contextmanager
def eval_mode(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` in eval mode without gradients for the block; its mode restored after."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            yield net
    finally:
        net.train(was_training)


_TRAINABLE: WeakKeyDictionary[nn.Module, list[nn.Parameter]] = WeakKeyDictionary()


@contextmanager
def frozen(net: nn.Module) -> Iterator[None]:
    """``net``'s trainable parameters frozen for the block (gradients flow through it, not
    into it). Lightning's toggled_optimizer does this too, but walks every parameter of every
    optimizer (~45 us a step on a CPU); the list here is made once per network."""
    params = _TRAINABLE.get(net)
    if params is None:
        params = _TRAINABLE[net] = [p for p in net.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def apply_model_options(generator: nn.Module, discriminator: nn.Module, compile: bool,
                        channels_last: bool, eager_discriminator: bool = False) -> None:
    """channels_last memory format and torch.compile, in place (state_dict keys do not
    change); D stays eager when ``eager_discriminator``."""
    for net in (generator, discriminator):
        if channels_last:
            net.to(memory_format=torch.channels_last)
        if compile and not (net is discriminator and eager_discriminator):
            net.compile()


def norm_option(norm: str, allowed: tuple[str, ...]) -> str:
    """A network's ``norm`` option, one of ``allowed`` (batch, spectral, none)."""
    check(norm in allowed, "norm", norm, f"it must be one of {', '.join(allowed)}")
    return norm


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every conv and linear layer in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            setattr(module, name, spectral_norm(child))
        else:
            apply_spectral_norm(child)
    return module


def grow_all(nets: Iterable[nn.Module | None], images_seen: int) -> dict[str, float]:
    """Set the phase of every network that changes with the images seen (one with a
    ``grow(images_seen)`` method: ganlab.nets.progan); the first one's values to log."""
    logged: dict[str, float] = {}
    for net in nets:
        grow = getattr(net, "grow", None)
        if grow is not None:
            values = grow(images_seen)
            logged = logged or values
    return logged
