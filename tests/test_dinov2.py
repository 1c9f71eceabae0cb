"""FD_DINOv2: DINOv2's ViT loaded from a weights file in the published format (never
downloaded), through torch-fidelity's DINOv2 preprocessing.

The published ViT-L/14 weights (1.2 GB) are not on this machine, so the tests write a small
randomly initialised ViT in the same format; what is checked is the loading, the pipeline and
the metrics, not the network. (That ganlab's ViT computes what facebookresearch/dinov2's
code computes was checked once with that code, on random ViT-S/14 and ViT-L/14 weights:
docs/EVALUATION.md.)
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from ganlab.errors import GanlabError
from ganlab.evaluate import main as evaluate_main
from ganlab.metrics import DinoV2Features, build_feature_net, image_metrics
from ganlab.metrics.dinov2 import DinoViT


def _coloured(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """n 16x16 RGB images in [-1, 1], each a random colour plus a little noise (images of
    pure noise all look alike to a random ViT's class token, an average over patches)."""
    g = torch.Generator().manual_seed(seed)
    colour = torch.rand(n, 3, 1, 1, generator=g) * (2 - shift) - 1
    return (colour + 0.1 * torch.randn(n, 3, 16, 16, generator=g)).clamp(-1, 1)


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory):
    """A 2-block, 64-wide DINOv2 ViT/14 with a 4x4 position grid, random weights, saved as a
    state dict with the published file's parameter names."""
    torch.manual_seed(0)
    vit = DinoViT(dim=64, depth=2, patch=14, hidden=256, grid=4)
    with torch.no_grad():
        for name, p in vit.named_parameters():
            if not name.endswith("norm1.weight") and not name.endswith("norm2.weight"):
                p.normal_(0, 0.5 if "gamma" in name or "embed" in name or "token" in name
                          else 0.05)
    path = tmp_path_factory.mktemp("dinov2") / "dinov2_tiny.pth"
    torch.save(vit.state_dict(), path)
    return path


def test_published_parameter_names() -> None:
    names = set(DinoViT(dim=64, depth=1, hidden=128, grid=2).state_dict())
    assert names == {
        "cls_token", "pos_embed", "mask_token", "patch_embed.proj.weight",
        "patch_embed.proj.bias", "norm.weight", "norm.bias",
        *(f"blocks.0.{n}" for n in (
            "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias",
            "attn.proj.weight", "attn.proj.bias", "ls1.gamma", "norm2.weight", "norm2.bias",
            "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias", "ls2.gamma")),
    }


def test_features_from_a_weights_file(tiny_dinov2) -> None:
    net = build_feature_net("dinov2", weights_path=tiny_dinov2)
    assert isinstance(net, DinoV2Features) and net.name == "dinov2-vit-64x2-14"
    features, logits = net(_coloured(3, seed=0))  # small images, resized to 224
    assert features.shape == (3, 64) and logits is None
    assert features.std(0).mean() > 0.05 * features.abs().mean()  # the images are told apart
    gray, _ = net(_coloured(2, seed=0)[:, :1])  # a gray image is its RGB with equal channels
    assert torch.allclose(gray, net(_coloured(2, seed=0)[:, :1].expand(-1, 3, -1, -1))[0])
    assert len(net.file_sha256) == 64


def test_fd_dinov2_metrics(tiny_dinov2) -> None:
    net = build_feature_net("dinov2", weights_path=tiny_dinov2)
    real = _coloured(24, seed=1)
    same, _ = image_metrics(real, real, net, kid_subset_size=8, kid_subsets=5)
    assert same["fd_dinov2"] == pytest.approx(0.0, abs=1e-6)
    assert "fid" not in same and "is_mean" not in same  # no logits, no Inception Score
    assert same["density"] == pytest.approx(1.0) and same["coverage"] == 1.0
    darker = _coloured(24, seed=2, shift=1.0)  # colours in [-1, 0]: half of the real range
    other, protocol = image_metrics(real, darker, net, kid_subset_size=8)
    assert other["fd_dinov2"] > 100 * same["fd_dinov2"] + 1e-3
    assert protocol["feature_net"] == "dinov2-vit-64x2-14" and protocol["is_splits"] is None


def test_missing_or_wrong_weights_are_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    message = f"put dinov2_vitl14_pretrain.pth in {tmp_path / 'checkpoints'}"
    with pytest.raises(GanlabError, match=re.escape(message)):
        build_feature_net("dinov2")
    with pytest.raises(GanlabError, match="does not exist"):
        build_feature_net("dinov2", weights_path=tmp_path / "missing.pth")
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(GanlabError, match="is not a DINOv2 ViT state dict"):
        build_feature_net("dinov2", weights_path=other)


def test_evaluation_fd_dinov2_scores_a_folder(tiny_dinov2, tmp_path, data_dir) -> None:
    import numpy as np
    from PIL import Image

    for name, seed in (("real", 0), ("fake", 1)):
        (tmp_path / name).mkdir()
        rng = np.random.default_rng(seed)
        for i in range(12):
            image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / name / f"{i}.png")
    overrides = (f"overrides=[data.path={tmp_path / 'real'},data.image_size=16,"
                 "evaluation.kid_subset_size=6]")
    assert evaluate_main([f"samples={tmp_path / 'fake'}", "data=image_folder",
                          "evaluation=fd_dinov2", f"weights_path={tiny_dinov2}",
                          "num_samples=12", f"data_dir={tmp_path / 'cache'}", overrides]) == 0
    scored = json.loads((tmp_path / "fake.metrics.json").read_text())
    assert scored["metrics/fd_dinov2"] > 0 and "metrics/is_mean" not in scored
    assert scored["protocol/feature_net"] == "dinov2-vit-64x2-14"
    assert scored["protocol/num_real"] == scored["protocol/num_fake"] == 12
