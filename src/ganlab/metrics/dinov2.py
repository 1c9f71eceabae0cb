"""DINOv2 ViT features for FD_DINOv2 (Stein et al. 2023, "Exposing flaws of generative model
evaluation metrics and their unfair treatment of diffusion models").

Why the network is written here: torch-fidelity 0.4.0 has a DINOv2 extractor
(``torch_fidelity.feature_extractor_dinov2``), but it builds the model only with
``torch.hub.load("facebookresearch/dinov2", ...)``, which downloads the model's code and
weights, and it raises NotImplementedError for a local weights file. The model's code is not
in any package. So this file holds the inference path of that ViT
(facebookresearch/dinov2, ``dinov2/models/vision_transformer.py`` and ``dinov2/layers``,
Apache-2.0), with the same parameter names, so that the published
``dinov2_vitl14_pretrain.pth`` loads with ``strict=True``; the preprocessing (TF1-compatible
bilinear resize to 224, ImageNet normalization) is torch-fidelity's own ``forward``, reused
through a subclass, so the pipeline is torch-fidelity's except for where the weights come
from.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2

from ganlab.errors import GanlabError

DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth"
DINOV2_FILE = "dinov2_vitl14_pretrain.pth"
# Embedding width -> the published model's letter (heads are width / 64 in all of them).
_ARCHS = {384: "s", 768: "b", 1024: "l", 1536: "g"}


class _Block(nn.Module):
    """Pre-norm transformer block with LayerScale (dinov2/layers/block.py, eval path)."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(dim, 3 * dim)
        self.attn.proj = nn.Linear(dim, dim)
        self.ls1 = nn.Module()
        self.ls1.gamma = nn.Parameter(torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, hidden)
        self.mlp.fc2 = nn.Linear(hidden, dim)
        self.ls2 = nn.Module()
        self.ls2.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:  # (B, N, C)
        b, n, c = x.shape
        qkv = self.attn.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads)
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))  # (B, heads, N, C / heads)
        a = nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + self.attn.proj(a.transpose(1, 2).reshape(b, n, c)) * self.ls1.gamma
        h = self.mlp.fc2(nn.functional.gelu(self.mlp.fc1(self.norm2(x))))
        return x + h * self.ls2.gamma


class DinoViT(nn.Module):
    """DINOv2's ViT (dinov2/models/vision_transformer.py), inference only: the normalized
    class token. Sizes as the hub models: ``img_size`` 518, position embeddings resized to
    the input with ``interpolate_offset`` 0.1 and no antialiasing."""

    def __init__(self, dim: int = 1024, depth: int = 24, patch: int = 14, hidden: int = 4096,
                 grid: int = 37) -> None:
        super().__init__()
        self.patch = patch
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # in the checkpoint; unused here
        self.blocks = nn.ModuleList(_Block(dim, dim // 64, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def _pos_embed(self, h0: int, w0: int) -> Tensor:
        # DinoVisionTransformer.interpolate_pos_encoding: bicubic, by a scale factor with the
        # "historical kludge" offset 0.1, so the resized grid matches the published features.
        pos = self.pos_embed.float()
        m = int(math.sqrt(pos.shape[1] - 1))
        if (h0, w0) == (m, m):
            return self.pos_embed
        grid = pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
        grid = nn.functional.interpolate(grid, scale_factor=((h0 + 0.1) / m, (w0 + 0.1) / m),
                                         mode="bicubic", antialias=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, h0 * w0, -1)
        return torch.cat([pos[:, :1], grid], dim=1).to(self.pos_embed.dtype)

    def forward(self, x: Tensor) -> Tensor:  # (B, 3, H, W) normalized -> (B, dim)
        tokens = self.patch_embed.proj(x).flatten(2).transpose(1, 2)  # (B, HW / p^2, dim)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)
        tokens = tokens + self._pos_embed(x.shape[-2] // self.patch, x.shape[-1] // self.patch)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 0]


def dinov2_weights_file(weights_path: str | Path | None) -> Path:
    """``weights_path``, else torch.hub's cached ``dinov2_vitl14_pretrain.pth``; never
    downloads."""
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise GanlabError(f"DINOv2 weights file {path} does not exist; fix "
                              "evaluation.weights_path")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / DINOV2_FILE
    if not path.is_file():
        raise GanlabError(f"DINOv2 weights not found: put {DINOV2_FILE} in {path.parent} (from "
                          f"{DINOV2_URL}) or set evaluation.weights_path; ganlab never downloads "
                          "them")
    return path


def load_dinov2(path: Path) -> tuple[DinoViT, str]:
    """The ViT of a DINOv2 checkpoint (its sizes read from the tensors' shapes) and its name,
    e.g. ``dinov2-vit-l-14``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise GanlabError(f"cannot read DINOv2 weights {path} ({type(err).__name__}); "
                          "it must be a state dict such as dinov2_vitl14_pretrain.pth") from None
    needed = ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight")
    if not isinstance(state, dict) or any(k not in state for k in needed):
        raise GanlabError(f"{path} is not a DINOv2 ViT state dict with an MLP block (ViT-S/B/L/14 "
                          "without registers, as dinov2_vitl14_pretrain.pth)")
    dim, patch = state["cls_token"].shape[-1], state["patch_embed.proj.weight"].shape[-1]
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    grid = int(math.sqrt(state["pos_embed"].shape[1] - 1))
    model = DinoViT(dim, depth, patch, state["blocks.0.mlp.fc1.weight"].shape[0], grid)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise GanlabError(f"{path} does not fit DINOv2's ViT ({first})") from None
    arch = _ARCHS.get(dim) if depth == {384: 12, 768: 12, 1024: 24}.get(dim) else None
    return model.eval(), f"dinov2-vit-{arch or f'{dim}x{depth}'}-{patch}"


class TorchFidelityDinoV2(FeatureExtractorDinoV2):
    """torch-fidelity's DINOv2 extractor (its uint8 -> 224 px -> normalized pipeline) around a
    model loaded from a file instead of from torch.hub."""

    def __init__(self, model: DinoViT, name: str) -> None:
        FeatureExtractorBase.__init__(self, name, ["dinov2"])
        self.feature_extractor_internal_dtype = torch.float32
        self.model = model
        self.requires_grad_(False)
        self.eval()
