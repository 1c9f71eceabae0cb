"""ganlab's `evaluation=inception` numbers equal torch-fidelity's `calculate_metrics` on the same
images with the same weights file; and what torchmetrics' FID gives on them.

The real InceptionV3 weights cannot be downloaded here, so both sides get the weights of a
randomly initialised torch-fidelity InceptionV3 written by the test: what is compared is the
pipeline (uint8 quantization, the resize to 299, the feature layers, the statistics and their
precision, the KID subsets and IS splits), not the network. docs/EVALUATION.md quotes the
numbers this test prints (pytest -s).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ganlab.evaluate import main as evaluate_main

# Four 2048 x 2048 eigenvalue problems (the FIDs of ganlab, torch-fidelity and torchmetrics
# twice) take 30 s or more each on 2 shared cores.
pytestmark = pytest.mark.slow
NUM_REAL, NUM_FAKE, KID_SUBSET, SEED = 12, 20, 10, 7


def _random_inception_weights(path, images: torch.Tensor) -> None:
    """A torch-fidelity InceptionV3 with random weights: He-normal convolutions (the default
    init shrinks the activations to ~1e-8 over 94 layers), and a last layer that maps the
    features' deviations from their mean on ``images`` to logits of std ~3, so that the
    class probabilities, and so the Inception Score, differ between images (random rows give
    every image the same class: the features share a large common part)."""
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    class Unloaded(tfi.FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):  # keep the random initialization
            return None

    torch.save({}, path)
    torch.manual_seed(0)
    net = Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    with torch.no_grad():
        (features,) = net(images)
        mean = features.mean(0)
        rows = torch.randn(1008, 2048)
        rows -= (rows @ mean)[:, None] * mean / mean.dot(mean)  # rows . mean = 0
        scale = 3.0 / (features @ rows.T).std()
        net.fc.weight.copy_(scale * rows)
    torch.save(net.state_dict(), path)


def _write_images(folder, n: int, seed: int, noisy: int = 0) -> torch.Tensor:
    """n 16x16 RGB PNGs: smooth random fields (4x4, upsampled) plus a little pixel noise, the
    last ``noisy`` of them with much more noise (fakes unlike any real image, so that
    precision is below 1); returned as (n, 3, 16, 16) uint8 too."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    images = []
    for i in range(n):
        coarse = rng.uniform(0, 255, (4, 4, 3))
        noise = 90.0 if i >= n - noisy else 4.0
        smooth = np.kron(coarse, np.ones((4, 4, 1))) + rng.normal(0, noise, (16, 16, 3))
        image = np.clip(smooth, 0, 255).round().astype(np.uint8)
        Image.fromarray(image).save(folder / f"{i:03d}.png")
        images.append(torch.from_numpy(image).permute(2, 0, 1))
    return torch.stack(images)


@pytest.fixture(scope="module")
def agreement(tmp_path_factory):
    from torch_fidelity import calculate_metrics
    from torchmetrics.image.fid import FrechetInceptionDistance

    tmp = tmp_path_factory.mktemp("agreement")
    real = _write_images(tmp / "real", NUM_REAL, seed=1)
    fake = _write_images(tmp / "fake", NUM_FAKE, seed=2, noisy=NUM_FAKE // 2)
    weights = tmp / "inception_random.pth"
    _random_inception_weights(weights, real[:8])

    overrides = f"[data.path={tmp / 'real'},data.image_size=16,seed={SEED}," \
                f"evaluation.kid_subset_size={KID_SUBSET}]"
    assert evaluate_main([f"samples={tmp / 'fake'}", "data=image_folder", "evaluation=inception",
                          f"weights_path={weights}", f"num_samples={NUM_FAKE}",
                          f"data_dir={tmp / 'cache'}", f"overrides={overrides}"]) == 0
    ganlab = json.loads((tmp / "fake.metrics.json").read_text())

    reference = calculate_metrics(
        input1=str(tmp / "fake"), input2=str(tmp / "real"), cuda=False, isc=True, fid=True,
        kid=True, prc=True, feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(weights), kid_subset_size=KID_SUBSET,
        rng_seed=SEED, cache=False, verbose=False, save_cpu_ram=True)

    def torchmetrics_fid(antialias: bool) -> float:
        metric = FrechetInceptionDistance(feature=2048, antialias=antialias,
                                          feature_extractor_weights_path=str(weights))
        metric.update(real, real=True)
        metric.update(fake, real=False)
        return metric.compute().item()

    torchmetrics = {"default": torchmetrics_fid(True), "antialias=False": torchmetrics_fid(False)}
    print("\nganlab:", {k: v for k, v in ganlab.items() if k.startswith("metrics/")})
    print("torch-fidelity:", reference)
    print("torchmetrics FID:", torchmetrics)
    return ganlab, reference, torchmetrics


@pytest.mark.parametrize(
    "ours,theirs",
    [
        ("fid", "frechet_inception_distance"),
        ("kid_mean", "kernel_inception_distance_mean"),
        ("kid_std", "kernel_inception_distance_std"),
        ("is_mean", "inception_score_mean"),
        ("is_std", "inception_score_std"),
        ("precision", "precision"),
        ("recall", "recall"),
    ],
)
def test_ganlab_equals_torch_fidelity(agreement, ours, theirs):
    ganlab, reference, _ = agreement
    assert ganlab[f"metrics/{ours}"] == pytest.approx(reference[theirs], rel=1e-4, abs=1e-12)


def test_the_numbers_are_not_degenerate_and_the_protocol_is_recorded(agreement):
    ganlab, _, _ = agreement
    assert ganlab["metrics/fid"] > 1 and ganlab["metrics/is_mean"] > 1.1
    assert 0 < ganlab["metrics/precision"] < 1 and 0 < ganlab["metrics/recall"] <= 1
    assert 0 < ganlab["metrics/coverage"] <= 1 and ganlab["metrics/density"] > 0
    assert ganlab["protocol/num_real"] == NUM_REAL and ganlab["protocol/num_fake"] == NUM_FAKE
    assert ganlab["protocol/seed"] == SEED and ganlab["protocol/tf32"] is False
    assert ganlab["protocol/feature_net"] == "inception"
    assert ganlab["protocol/statistics_dtype"] == "float64"
    assert len(ganlab["protocol/weights_file_sha256"]) == 64
    assert len(ganlab["protocol/data_sha256"]) == len(ganlab["protocol/samples_sha256"]) == 64


def test_torchmetrics_default_resize_gives_another_fid(agreement):
    # torchmetrics' FID resizes with antialiased bilinear interpolation by default (since 1.8),
    # torch-fidelity (and the original TensorFlow code) without antialiasing. With the TF1
    # resize torchmetrics agrees with torch-fidelity (to float32 precision: it returns float32
    # and accumulates the covariance in one pass); its default does not.
    _, reference, torchmetrics = agreement
    fid = reference["frechet_inception_distance"]
    assert torchmetrics["antialias=False"] == pytest.approx(fid, rel=1e-3)
    assert abs(torchmetrics["default"] - fid) > 0.01 * fid
