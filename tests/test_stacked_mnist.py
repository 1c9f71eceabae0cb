"""Stacked MNIST on MNIST-format files the test writes: the data and the mode count."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from test_data import write_idx

from ganlab.data import StackedMNISTDataModule
from ganlab.errors import GanlabError
from ganlab.evaluation import Evaluator


def synthetic_digits(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """28x28 "digits" that a small CNN tells apart whatever their position: class k is a
    bright 3-pixel-thick bar 2k + 5 pixels long."""
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        top, left = rng.integers(8, 18), 14 - (2 * k + 5) // 2
        images[i, top : top + 3, left : left + 2 * k + 5] = 255
    return images, labels


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mnist_root")
    rng = np.random.default_rng(0)
    write_idx(root / "MNIST" / "raw", "train", *synthetic_digits(2000, rng))
    write_idx(root / "MNIST" / "raw", "t10k", *synthetic_digits(200, rng))
    return root


def test_stacked_images_carry_their_three_digits(root):
    data = StackedMNISTDataModule(str(root), batch_size=8, num_samples=500)
    x, y = data.tensors("train")
    assert x.shape == (500, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert int(y.min()) >= 0 and int(y.max()) <= 999
    mnist_x, mnist_y = data.mnist().tensors("train")
    # Every channel of a stacked image is one of the MNIST images of the digit its label names.
    for i in range(5):
        for c, digit in enumerate((int(y[i]) // 100, int(y[i]) // 10 % 10, int(y[i]) % 10)):
            same = (mnist_x[mnist_y == digit, 0] - x[i, c]).abs().flatten(1).max(1).values
            assert same.min() < 1e-6
    batch, labels = next(iter(data.train_dataloader()))
    assert batch.shape == (8, 3, 32, 32) and labels.shape == (8,)


def test_fixed_triples_whatever_the_run_seed(root):
    a = StackedMNISTDataModule(str(root), num_samples=50, seed=0).tensors("train")[1]
    b = StackedMNISTDataModule(str(root), num_samples=50, seed=7).tensors("train")[1]
    assert torch.equal(a, b)


def test_mode_count_and_kl(root, tmp_path):
    data = StackedMNISTDataModule(str(root), num_samples=2000)
    x, y = data.tensors("train")
    cfg = OmegaConf.create({"num_samples": 2000})
    evaluate = Evaluator(cfg, data, tmp_path)
    metrics = evaluate(lambda n: x[:n], step=0)
    assert metrics["protocol/classifier_accuracy"] > 0.95
    assert metrics["protocol/feature_net"] == "mnist_classifier"
    assert metrics["metrics/modes"] == len(torch.unique(y))
    p = torch.bincount(y, minlength=1000).double() / len(y)
    expected = float((p[p > 0] * (p[p > 0] * 1000).log()).sum())
    assert metrics["metrics/reverse_kl"] == pytest.approx(expected, rel=0.05)
    # A generator stuck on one triple: one mode, KL = log(1000).
    one = evaluate(lambda n: x[:1].expand(n, -1, -1, -1), step=0)
    assert one["metrics/modes"] == 1
    assert one["metrics/reverse_kl"] == pytest.approx(math.log(1000))


def test_wrong_channels_is_one_line(root):
    with pytest.raises(GanlabError, match="data.channels=1"):
        StackedMNISTDataModule(str(root), channels=1)
