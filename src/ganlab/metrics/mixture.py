"""Mode coverage of samples from a 2-D Gaussian mixture (ring8, grid25).

Definitions from VEEGAN (Srivastava et al. 2017, sec. 5.1) as used by PacGAN (Lin et al. 2018,
sec. 5): a sample is high quality when it lies within `threshold` standard deviations of its
nearest mode; a mode is captured when it is the nearest mode of at least one high-quality
sample; reverse KL compares the histogram of high-quality samples over the modes to the
uniform distribution of the true mixture.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Categorical, kl_divergence


def mode_coverage(
    samples: Tensor, centers: Tensor, std: float, threshold: float = 3.0
) -> dict[str, float]:
    """Captured modes, high-quality fraction and reverse KL of `samples` (N, 2) against `centers` (M, 2).

    Both are in data coordinates, `std` is the standard deviation of each mixture component.
    Returns `modes` (number of captured modes), `hq_fraction` and `reverse_kl` = KL(q || uniform)
    where q is the histogram of high-quality samples over the modes (0 log 0 = 0). When no
    sample is high quality q is undefined and `reverse_kl` is set to log(M), the value of a
    generator that puts all its mass on a single mode.
    """
    samples, centers = samples.double(), centers.to(samples.device).double()
    dist = torch.cdist(samples, centers)  # (N, M)
    nearest_dist, nearest = dist.min(dim=1)
    hq = nearest_dist <= threshold * std
    num_modes = centers.shape[0]
    counts = torch.bincount(nearest[hq], minlength=num_modes).double()  # (M,)
    if counts.sum() == 0:
        reverse_kl = math.log(num_modes)
    else:
        # torch.distributions handles 0 log 0 = 0 for modes no sample reaches.
        uniform = torch.full_like(counts, 1.0 / num_modes)
        reverse_kl = kl_divergence(Categorical(probs=counts), Categorical(probs=uniform)).item()
    return {
        "modes": int((counts > 0).sum()),
        "hq_fraction": hq.double().mean().item(),
        "reverse_kl": reverse_kl,
    }
