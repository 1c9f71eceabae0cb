"""Stacked digits (data=stacked_digits): three bundled digits as RGB channels, 1,000 modes,
scored by mode count and KL as stacked_mnist is; offline."""

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import _DATA_DIR
from omegaconf import OmegaConf

from ganlab.data import DigitsDataModule, StackedDigitsDataModule
from ganlab.errors import GanlabError
from ganlab.evaluation import Evaluator
from ganlab.train import train


def test_every_one_of_the_1000_modes_is_in_the_data():
    data = StackedDigitsDataModule(image_size=16)
    x, y = data.tensors("train")
    assert x.shape == (30000, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert len(torch.unique(y)) == 1000 and int(y.min()) == 0 and int(y.max()) == 999
    # 30,000 triples over 1,000 modes: 30 a mode on average, none far off it.
    counts = torch.bincount(y, minlength=1000)
    assert counts.sum() == 30000 and counts.min() >= 10 and counts.max() <= 60


def test_each_channel_is_a_digit_of_its_split_named_by_the_label():
    data = StackedDigitsDataModule(image_size=16, num_samples=200)
    for split in ("train", "test"):
        x, y = data.tensors(split)
        digits_x, digits_y = DigitsDataModule(image_size=16, channels=1).tensors(split)
        for i in range(10):
            label = int(y[i])
            for c, digit in enumerate((label // 100, label // 10 % 10, label % 10)):
                same = (digits_x[digits_y == digit, 0] - x[i, c]).abs().flatten(1).amax(1)
                assert same.min() == 0


def test_fixed_triples_whatever_the_run_seed():
    a = StackedDigitsDataModule(num_samples=50, seed=0).tensors("train")[1]
    b = StackedDigitsDataModule(num_samples=50, seed=7).tensors("train")[1]
    c = StackedDigitsDataModule(num_samples=50, seed=0).tensors("test")[1]
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("kwargs,key", [({"channels": 1}, "data.channels=1"),
                                        ({"num_classes": 10}, "data.num_classes=10"),
                                        ({"num_samples": 0}, "num_samples=0")])
def test_bad_options_are_one_line(kwargs, key):
    with pytest.raises(GanlabError, match=key) as err:
        StackedDigitsDataModule(**kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_the_real_data_scores_1000_modes_and_a_collapsed_one_a_single_mode():
    data = StackedDigitsDataModule(image_size=16, num_samples=26000)
    x, y = data.tensors("train")
    evaluate = Evaluator(OmegaConf.create({"num_samples": 26000}), data, _DATA_DIR[0])
    metrics = evaluate(lambda n: x[:n], step=0)
    assert metrics["protocol/classifier_accuracy"] > 0.9  # per channel, on held-out digits
    assert metrics["protocol/feature_net"] == "digits_classifier"  # not MNIST's
    assert metrics["protocol/num_fake"] == 26000
    assert metrics["metrics/modes"] == 1000
    # The labels' own histogram is ~0.02 from uniform (26 samples a mode); misread channels
    # move it a little.
    p = torch.bincount(y[:26000], minlength=1000).double() / 26000
    assert float((p * (p * 1000).log()).sum()) < 0.03
    assert metrics["metrics/reverse_kl"] < 0.1
    one = evaluate(lambda n: x[:1].expand(n, -1, -1, -1), step=0)
    assert one["metrics/modes"] == 1
    assert one["metrics/reverse_kl"] == pytest.approx(math.log(1000))


@pytest.mark.slow
def test_a_run_on_stacked_digits_reports_modes_and_kl(make_config):
    cfg = make_config(["data=stacked_digits", "data.num_samples=2000", "data.batch_size=16",
                       "trainer.max_steps=2", "evaluation.num_samples=1000",
                       "callbacks.sample_grid.every_n_steps=0", "logger=none"])
    assert cfg.data.image_size == 16 and cfg.data.channels == 3  # the tiny dcgan's size
    metrics = train(cfg)
    saved = json.loads(Path(cfg.paths.output_dir, "metrics.json").read_text())
    assert saved["metrics/modes"] == metrics["metrics/modes"]
    assert 1 <= saved["metrics/modes"] <= 1000
    assert 0 <= saved["metrics/reverse_kl"] <= math.log(1000) + 1e-9
    assert saved["protocol/num_fake"] == 1000
