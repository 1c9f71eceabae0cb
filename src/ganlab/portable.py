"""A generator as a graph other programs run: TorchScript (``torch.jit.load``) and ONNX
(onnxruntime, or any other runtime), with a dynamic batch axis.

The exported graph takes what the network takes, read from what it can do: latents ``z``
(B, latent_dim); with class labels ``labels`` (B,) int64 for a conditional generator; with
the truncation ``psi`` (B,) for a mapping-network generator (its ``portable_forward``, noise
fixed); images ``images`` (B, C, H, W) in [-1, 1] for an image-to-image pair (domain A to
B). It gives images in [-1, 1], or 2-D points in data coordinates (the scale is part of the
graph).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ganlab.errors import GanlabError

FORMATS = {"torchscript": "model.ts", "onnx": "model.onnx"}


class PortableGenerator(nn.Module):
    """The network behind the exported graph's inputs (see the module docstring)."""

    def __init__(self, net: nn.Module, scale: float = 1.0) -> None:
        super().__init__()
        self.translation = hasattr(net, "a2b")
        self.net = net.a2b if self.translation else net
        self.mapping = hasattr(net, "portable_forward")
        self.conditional = bool(getattr(net, "num_classes", None))
        self.scale = scale

    def input_names(self) -> list[str]:
        if self.translation:
            return ["images"]
        return ["z", *(["labels"] if self.conditional else []), *(["psi"] if self.mapping else [])]

    def forward(self, *inputs: Tensor) -> Tensor:
        out = self.net.portable_forward(*inputs) if self.mapping else self.net(*inputs)
        return out * self.scale if out.dim() == 2 else out


def example_inputs(portable: PortableGenerator, latent_dim: int | None, sample_shape: list[int],
                   batch: int = 2, psi: float = 1.0) -> tuple[Tensor, ...]:
    """Inputs of batch ``batch`` for tracing and for checking the exported graph."""
    g = torch.Generator().manual_seed(0)
    if portable.translation:
        return (torch.rand(batch, *sample_shape, generator=g) * 2 - 1,)
    inputs = [torch.randn(batch, latent_dim, generator=g)]
    if portable.conditional:
        inputs.append(torch.arange(batch) % portable.net.num_classes)
    if portable.mapping:
        inputs.append(torch.full((batch,), float(psi)))
    return tuple(inputs)


def _unsupported(err: Exception) -> str:
    """The operator an exporter could not convert, when its message names one; else the
    reason it gives (the cause's first line)."""
    text = str(err)
    found = re.search(r"(aten::[\w.]+|aten\.[\w.]+)", text)
    if found:
        return f"operator {found.group(1)} is not supported"
    summary = re.search(r"<class '[\w.]+'>: (.+)", text)
    first = summary.group(1) if summary else text.strip().splitlines()[0] if text.strip() else ""
    return " ".join(first.split())[:200] or type(err).__name__


def write_torchscript(portable: PortableGenerator, inputs: tuple[Tensor, ...], path: Path) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python values it freezes
            traced = torch.jit.trace(portable.eval(), inputs, check_trace=False)
        traced.save(str(path))
    except Exception as err:  # the tracer raises many kinds; the message names the operator
        raise GanlabError(f"cannot export to torchscript: {_unsupported(err)}") from None


def write_onnx(portable: PortableGenerator, inputs: tuple[Tensor, ...], path: Path) -> None:
    """torch.onnx's exporter (torch.export based) with the batch axis dynamic."""
    batch = torch.export.Dim("batch")
    names = portable.input_names()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(portable.eval(), inputs, str(path), dynamo=True, verbose=False,
                              external_data=False,  # one self-contained file
                              input_names=names, output_names=["samples"],
                              dynamic_shapes=(tuple({0: batch} for _ in inputs),))
    except Exception as err:
        raise GanlabError(f"cannot export to onnx: {_unsupported(err)}") from None
