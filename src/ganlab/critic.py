"""D as the loss sees it: the samples augmented (the same op on real and fake), the labels of
a conditional run, and the checks that D and G can do what the run asks of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from ganlab.errors import GanlabError
from ganlab.nets.layers import eval_mode
from ganlab.options import at_least, check

MODES = ("none", "concat", "projection")


class Conditioning:
    """The ``conditioning`` node: ``mode`` none, concat (the one-hot label on D's input,
    Mirza and Osindero 2014) or projection (Miyato and Koyama 2018), for ``num_classes``
    classes (the data's labels). G always takes the label concatenated to z."""

    def __init__(self, mode: str = "none", num_classes: int | None = None) -> None:
        check(mode in MODES, "mode", mode, f"it must be one of {', '.join(MODES)}")
        self.mode = mode
        self.num_classes = None
        if mode != "none":
            if num_classes is None:
                raise GanlabError(
                    f"conditioning={mode} needs labelled data but data.num_classes is null; use "
                    "a labelled data set (digits, mnist, fashion_mnist, cifar10) or "
                    "conditioning=none")
            self.num_classes = at_least(num_classes, "num_classes")

    def check_networks(self, generator: nn.Module, discriminator: nn.Module) -> None:
        """Both networks must have been built for these classes (their ``num_classes``)."""
        for net in (generator, discriminator):
            if getattr(net, "num_classes", None) != self.num_classes:
                what = "is not conditional" if self.num_classes else "is conditional"
                raise GanlabError(
                    f"conditioning={self.mode} but {type(net).__name__} {what}; use "
                    "conditioning=none, or a model whose networks take num_classes (set from "
                    "conditioning.num_classes)")


def stateful(augment: Any) -> nn.Module | None:
    """An augmentation with state (ADA's p), to be a part of the module (so checkpoints hold
    it and a resume restores it); None for a stateless one."""
    return augment if isinstance(augment, nn.Module) else None


class CriticView:
    """``view(y)`` is D as the loss sees it: ``augment`` (DiffAugment, ...) applied to every
    sample, D given the labels ``y`` of a conditional run; D itself when there is neither."""

    def __init__(self, discriminator: nn.Module, augment: Any = None) -> None:
        self.discriminator = discriminator
        self.augment = augment or None  # a `none` option composes to an empty node

    def observe(self, real_logits: Tensor, images: int) -> dict[str, float]:
        """Give a self-tuning augmentation (ADA) D's logits on the ``images`` real images of
        a D update; the values it wants logged."""
        observe = getattr(self.augment, "observe", None)
        return observe(real_logits, images) if observe is not None else {}

    def augmented(self, net: nn.Module) -> Callable[[Tensor], Tensor]:
        """``net`` behind the augmentation (a CycleGAN discriminator of one domain, say)."""
        return net if self.augment is None else _Behind(net, self.augment)

    def view(self, y: Tensor | None = None) -> Callable[[Tensor], Tensor]:
        if y is None:
            return self.augmented(self.discriminator)
        return _Behind(self.discriminator, self.augment, y)


class _Behind:
    """``net`` behind ``augment`` (and given the labels ``y``) as one callable, which keeps
    the net's ``gradient_scale`` for the penalties (ganlab.penalties.input_gradient_scale)."""

    def __init__(self, net: nn.Module, augment: Any, y: Tensor | None = None) -> None:
        self.net, self.augment, self.y = net, augment, y

    def __call__(self, x: Tensor) -> Tensor:
        x = x if self.augment is None else self.augment(x)
        return self.net(x) if self.y is None else self.net(x, self.y)

    @property
    def gradient_scale(self) -> float:
        return float(getattr(self.net, "gradient_scale", 1.0))


def probe(key: str, net: Any, *inputs: Tensor) -> Tensor:
    """``net``'s output for ``inputs`` (eval mode, no gradient, not compiled): what a network
    makes or takes is checked by running it once on zeros."""
    with eval_mode(net):
        try:
            return net.forward(*inputs)
        except (RuntimeError, ValueError) as err:
            shape = list(inputs[0].shape[1:])
            first = " ".join(str(err).split())[:160]
            raise GanlabError(f"{key} does not take inputs of shape {shape} (the data's): "
                              f"{first}") from None


def check_shape(key: str, made: list[int], shape: list[int]) -> None:
    if made != shape:
        raise GanlabError(
            f"{key} is configured for samples of shape {made} but the data has shape "
            f"{shape}; make {key}'s channels, image_size or shape match data.channels, "
            "data.image_size or data.shape (by default they follow the data)")
