"""Features of many samples without holding them all: chunks of samples are made (or read),
passed through the feature network and dropped; and full float32 precision while doing it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from ganlab.metrics.features import FeatureNet, extract

# Samples made and scored per chunk: 1,000 images of 256 x 256 x 3 are 0.8 GB of float32.
CHUNK = 1000


@contextmanager
def full_precision() -> Iterator[None]:
    """TF32 off for matmuls and cuDNN convolutions (on Ampere and later GPUs it rounds float32
    inputs to 10 mantissa bits, which moves FID), restored after."""
    matmul, cudnn = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.allow_tf32 = cudnn


def stream_features(
    net: FeatureNet,
    samples: Callable[[slice], Tensor],
    n: int,
    *,
    progress: bool = False,
    desc: str = "samples",
    chunk: int = CHUNK,
    batch_size: int = 256,
) -> tuple[Tensor, Tensor | None]:
    """(features (n, D), logits (n, K) or None) of ``samples(slice)`` for slices covering
    ``range(n)`` in order; ``progress``: a tqdm bar over the samples, on stdout with the rest
    of a command's progress (stderr holds only errors)."""
    from tqdm import tqdm

    features, logits = [], []
    with tqdm(total=n, unit="samples", desc=desc, disable=not progress, leave=False,
              file=sys.stdout) as bar:
        for start in range(0, n, chunk):
            f, lg = extract(net, samples(slice(start, min(start + chunk, n))), batch_size)
            features.append(f)
            logits.append(lg)
            bar.update(len(f))
    if logits[0] is None:
        return torch.cat(features), None
    return torch.cat(features), torch.cat(logits)
