"""Metrics on constructed cases whose answers are known in closed form."""

import math
import re

import pytest
import torch

from ganlab.classifier import SmallCNN
from ganlab.errors import GanlabError
from ganlab.metrics import (
    ClassifierFeatures,
    InceptionFeatures,
    build_feature_net,
    class_coverage,
    content_sha256,
    density_coverage,
    fid,
    image_metrics,
    inception_score,
    kid,
    load_or_compute_reference_stats,
    load_reference_stats,
    mode_coverage,
    precision_recall,
    reference_stats,
    reference_stats_path,
)

RING = torch.stack(
    [torch.tensor([math.cos(a), math.sin(a)]) for a in torch.arange(8) * 2 * math.pi / 8]
)


def test_samples_on_every_mode_capture_all_modes() -> None:
    out = mode_coverage(RING.repeat(10, 1), RING, std=0.02)
    assert out == {"modes": 8, "hq_fraction": 1.0, "reverse_kl": pytest.approx(0.0, abs=1e-12)}


def test_samples_on_one_mode_give_log_m() -> None:
    samples = RING[3] + 0.01 * torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    out = mode_coverage(samples, RING, std=0.02)
    assert out["modes"] == 1
    assert out["reverse_kl"] == pytest.approx(math.log(8))


def test_far_samples_are_not_high_quality() -> None:
    out = mode_coverage(torch.full((50, 2), 10.0), RING, std=0.02)
    assert out == {"modes": 0, "hq_fraction": 0.0, "reverse_kl": pytest.approx(math.log(8))}


def _gaussian(mean: list[float], var: list[float], n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.tensor(mean) + torch.tensor(var).sqrt() * torch.randn(n, len(mean), generator=g)


def test_fid_of_a_set_with_itself_is_zero() -> None:
    x = _gaussian([0.0] * 8, [1.0] * 8, 500, seed=0)
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)


def test_fid_matches_the_closed_form_for_diagonal_gaussians() -> None:
    mu1, var1 = [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 0.5, 1.0]
    mu2, var2 = [1.0, 0.0, -1.0, 2.0], [2.0, 1.0, 1.0, 0.25]
    # ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), which for diagonal S is sum (s1 - s2)^2.
    expected = sum((a - b) ** 2 for a, b in zip(mu1, mu2, strict=True)) + sum(
        (math.sqrt(a) - math.sqrt(b)) ** 2 for a, b in zip(var1, var2, strict=True)
    )
    x, y = _gaussian(mu1, var1, 20000, seed=1), _gaussian(mu2, var2, 20000, seed=2)
    assert fid(x, y) == pytest.approx(expected, abs=0.05)


def test_kid_of_identical_sets_is_zero_and_far_sets_is_not() -> None:
    # Subsets of the two copies share points, which biases the unbiased MMD^2 slightly below 0;
    # with subsets of 200 out of 2000 that bias is ~0.01, against ~0.3 for a small shift.
    x = _gaussian([0.0] * 16, [1.0] * 16, 2000, seed=3)
    torch.manual_seed(0)
    mean, std = kid(x, x, subset_size=200, subsets=20)
    assert mean == pytest.approx(0.0, abs=0.02) and std >= 0
    assert kid(x, x + 0.3, subset_size=200, subsets=20)[0] > 0.2


def test_kid_with_too_few_samples_names_both_numbers() -> None:
    x = torch.randn(50, 4)
    with pytest.raises(GanlabError, match=r"subset size 1000 .* 50 samples"):
        kid(x, x, subset_size=1000)


def test_precision_recall_of_identical_and_disjoint_sets() -> None:
    x = _gaussian([0.0] * 8, [1.0] * 8, 300, seed=4)
    assert precision_recall(x, x) == (1.0, 1.0)
    assert precision_recall(x, x + 100.0) == (0.0, 0.0)


def _uniform_classifier() -> SmallCNN:
    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, num_classes=10)
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    return model


def test_inception_score_of_a_uniform_classifier_is_one() -> None:
    net = ClassifierFeatures(_uniform_classifier())
    _, logits = net(torch.rand(40, 1, 16, 16) * 2 - 1)
    assert inception_score(logits, splits=4)[0] == pytest.approx(1.0)


def test_inception_score_of_confident_balanced_predictions_is_the_class_count() -> None:
    logits = 50.0 * torch.eye(10).repeat(20, 1)  # every class equally often, each one-hot
    assert inception_score(logits, splits=1) == (pytest.approx(10.0, rel=1e-4), 0.0)


def test_class_coverage_of_a_collapsed_generator() -> None:
    fake_logits = torch.eye(4)[torch.zeros(30, dtype=torch.long)]  # always class 0
    out = class_coverage(fake_logits, real_class_counts=torch.tensor([5, 5, 5, 5]))
    assert out == {"classes_generated": 1, "class_kl": pytest.approx(math.log(4))}


def test_inception_without_weights_names_the_file_and_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    message = f"weights-inception-2015-12-05-6726825d.pth in {tmp_path / 'checkpoints'}"
    with pytest.raises(GanlabError, match=re.escape(message)):
        build_feature_net("inception")
    with pytest.raises(GanlabError, match="does not exist"):
        InceptionFeatures(weights_path=tmp_path / "missing.pth")


def test_inception_loads_weights_from_the_hub_cache_without_downloading(tmp_path, monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    class RandomInception(tfi.FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):  # keep the random initialization
            return None

    # Random weights stand in for the real file, which is not on this machine.
    monkeypatch.setattr(tfi, "load_state_dict_from_url", lambda *a, **k: {})
    weights = RandomInception("inception-v3-compat", ["2048"]).state_dict()
    monkeypatch.setattr(tfi, "load_state_dict_from_url", lambda *a, **k: pytest.fail("download"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save(weights, tmp_path / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth")
    net = build_feature_net("inception")
    features, logits = net(torch.rand(2, 1, 16, 16) * 2 - 1)  # gray images become RGB
    assert features.shape == (2, 2048) and logits.shape == (2, 1008)
    assert len(net.sha256) == 64


def test_unknown_feature_net_is_a_ganlab_error() -> None:
    with pytest.raises(GanlabError, match="inception, dinov2, classifier"):
        build_feature_net("vgg")


def _random_net_and_images() -> tuple[ClassifierFeatures, torch.Tensor]:
    torch.manual_seed(0)
    net = ClassifierFeatures(SmallCNN(in_channels=1, num_classes=10))
    return net, torch.rand(64, 1, 16, 16) * 2 - 1


def test_image_metrics_of_real_against_itself() -> None:
    net, images = _random_net_and_images()
    metrics, protocol = image_metrics(images, images, net, kid_subset_size=32, kid_subsets=10)
    assert metrics["fid"] == pytest.approx(0.0, abs=1e-4)
    assert metrics["kid_mean"] == pytest.approx(0.0, abs=0.05)
    assert metrics["precision"] == metrics["recall"] == 1.0
    # Every real ball holds its own centre and k - 1 others, so density is exactly 1.
    assert metrics["density"] == pytest.approx(1.0) and metrics["coverage"] == 1.0
    assert metrics["is_mean"] >= 1.0
    assert metrics["class_kl"] == pytest.approx(0.0, abs=1e-12)
    assert protocol["feature_net"] == "classifier" and len(protocol["feature_net_sha256"]) == 64
    assert (protocol["num_real"], protocol["num_fake"], protocol["split"]) == (64, 64, "test")
    assert (protocol["pr_k"], protocol["dc_k"], protocol["statistics_dtype"]) == (3, 5, "float64")
    assert protocol["data_sha256"] == content_sha256(images)


def test_reference_stats_cache_round_trip(tmp_path) -> None:
    net, images = _random_net_and_images()
    stats = load_or_compute_reference_stats(images, net, tmp_path, data="noise", split="test")
    content = content_sha256(images)
    path = reference_stats_path(tmp_path, "noise", "test", net, content)
    assert path.name == f"noise-test-classifier-{net.sha256[:12]}-{content[:12]}.pt"
    assert stats["meta"]["content_sha256"] == content
    assert stats["mu"].dtype == stats["sigma"].dtype == torch.float64
    loaded = load_reference_stats(path)  # weights_only=True inside
    assert torch.equal(loaded["features"], stats["features"])
    assert loaded["meta"] == stats["meta"]
    fake = images.flip(-1)
    from_stats, _ = image_metrics(loaded, fake, net, kid_subset_size=32, kid_subsets=5)
    from_images, _ = image_metrics(images, fake, net, kid_subset_size=32, kid_subsets=5)
    assert from_stats == pytest.approx(from_images)


def test_reference_stats_of_another_network_are_rejected() -> None:
    net, images = _random_net_and_images()
    stats = reference_stats(
        images, ClassifierFeatures(_uniform_classifier()), data="x", split="test"
    )
    with pytest.raises(GanlabError, match="another classifier network"):
        image_metrics(stats, images, net, kid_subset_size=32)


def test_density_and_coverage_of_a_hand_computed_case() -> None:
    # Real points on a line, 0 1 3 6 10; fakes at 0.5, 2.5 and 20 (features of width 1).
    real = torch.tensor([[0.0], [1.0], [3.0], [6.0], [10.0]])
    fake = torch.tensor([[0.5], [2.5], [20.0]])
    # k=1: radii 1 1 2 3 4. 0.5 lies in the balls of 0 and 1, 2.5 in that of 3, 20 in none:
    # density (2 + 1 + 0) / (1 * 3) = 1; balls of 0, 1, 3 hold a fake: coverage 3/5.
    assert density_coverage(real, fake, k=1) == (pytest.approx(1.0), pytest.approx(0.6))
    # k=2: radii 3 2 3 4 7. 0.5 in the balls of 0, 1, 3; 2.5 in those of 0, 1, 3, 6:
    # density 7 / (2 * 3); the balls of 0, 1, 3, 6 hold a fake: coverage 4/5.
    assert density_coverage(real, fake, k=2) == (pytest.approx(7 / 6), pytest.approx(0.8))
    # A point on a ball's boundary is outside it (strict <, as the authors' code): 2.0 is at
    # distance 1 of the point 1 (radius 1) and inside only the ball of 3 (radius 2).
    assert density_coverage(real, torch.tensor([[2.0]]), k=1) == (1.0, pytest.approx(0.2))


def test_density_coverage_needs_more_real_samples_than_k() -> None:
    with pytest.raises(GanlabError, match="k=5 needs > 5 real samples"):
        density_coverage(torch.randn(5, 2), torch.randn(9, 2), k=5)


def test_changed_data_never_reuses_reference_stats(tmp_path) -> None:
    net, images = _random_net_and_images()
    images = ((images + 1) * 127.5).round() / 127.5 - 1  # as read from uint8 files
    first = load_or_compute_reference_stats(images, net, tmp_path, data="noise", split="train")
    changed = images.clone()
    changed[0, 0, 0, 0] += 2 / 255  # one pixel two grey levels brighter
    second = load_or_compute_reference_stats(changed, net, tmp_path, data="noise", split="train")
    assert first["meta"]["content_sha256"] != second["meta"]["content_sha256"]
    assert len(list(tmp_path.glob("noise-train-classifier-*.pt"))) == 2
    # The hash is of the uint8 images, so a change below a grey level is no change.
    assert content_sha256(images) == content_sha256(images + 1e-4)
