"""Class conditioning shared by the networks (CGAN, Mirza and Osindero 2014; projection
discriminator, Miyato and Koyama 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganlab.errors import GanlabError

CONDITIONINGS = ("concat", "projection")


def check_conditioning(num_classes: int | None, conditioning: str) -> None:
    if num_classes is not None and conditioning not in CONDITIONINGS:
        raise GanlabError(
            f"conditioning={conditioning!r} is not known; use one of {', '.join(CONDITIONINGS)}"
        )


def one_hot(y: Tensor, num_classes: int, like: Tensor) -> Tensor:
    """(B,) labels -> (B, num_classes) one-hot in ``like``'s dtype and device."""
    if y is None:
        raise GanlabError("this network is conditional: pass class labels with the samples")
    return F.one_hot(y.long(), num_classes).to(like.dtype)


def with_label_channels(x: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """Mirza and Osindero's concatenation for images: the one-hot label as extra channels."""
    h = one_hot(y, num_classes, x)  # (B, K)
    if x.dim() == 2:
        return torch.cat([x, h], dim=1)
    return torch.cat([x, h[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)


class Projection(nn.Module):
    """The projection term <embed(y), phi(x)> added to D's logit (Miyato and Koyama 2018, eq. 3)."""

    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, features)
        nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, h: Tensor, y: Tensor) -> Tensor:
        """h (B, F) pooled features -> (B, 1)."""
        return (self.embed(y.long()) * h).sum(1, keepdim=True)
