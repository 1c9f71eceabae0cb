"""The metrics classifier on scikit-learn's bundled digits (works offline)."""

import functools
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from ganlab import classifier
from ganlab.classifier import (
    SmallCNN,
    load_classifier,
    load_or_train_classifier,
    predict,
    save_classifier,
    train_classifier,
)
from ganlab.errors import GanlabError


@functools.cache
def digits() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """8x8 digits in [-1, 1] resized to 32x32, stratified 80/20 split."""
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 8 - 1  # 0..16 -> [-1, 1]
    x = F.interpolate(x, size=32, mode="bilinear", antialias=True, align_corners=False)
    y = torch.tensor(data.target)
    train, test = train_test_split(
        np.arange(len(y)), test_size=0.2, stratify=data.target, random_state=0
    )
    return {"train": (x[train], y[train]), "test": (x[test], y[test])}


class DigitsData:
    """Stands in for the project's datamodule interface: setup() and tensors(split)."""

    def __init__(self, name: str = "digits", labels: bool = True) -> None:
        self.name, self.labels = name, labels

    def setup(self) -> None:
        self.splits = digits()

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, y = self.splits[split]
        return x, (y if self.labels else None)


@pytest.fixture(scope="module")
def trained() -> tuple[SmallCNN, float, float]:
    start = time.perf_counter()
    model, accuracy = train_classifier(*digits()["train"], *digits()["test"], seed=0)
    return model, accuracy, time.perf_counter() - start


def test_classifier_reaches_95_percent_on_held_out_digits(trained) -> None:
    _, accuracy, seconds = trained
    print(f"digits held-out accuracy {accuracy:.4f} in {seconds:.1f} s")
    assert accuracy >= 0.95


def test_training_is_deterministic_under_a_seed() -> None:
    x, y = digits()["train"]
    runs = [train_classifier(x[:200], y[:200], x[:50], y[:50], epochs=1, seed=3) for _ in range(2)]
    for a, b in zip(
        runs[0][0].state_dict().values(), runs[1][0].state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_save_load_round_trip_gives_the_same_predictions(trained, tmp_path) -> None:
    model, accuracy, _ = trained
    path = tmp_path / "clf.pt"
    save_classifier(model, path, accuracy, "digits")
    record = torch.load(path, weights_only=True)
    assert record["data"] == "digits" and record["accuracy"] == accuracy
    loaded, loaded_accuracy = load_classifier(path)
    x = digits()["test"][0]
    assert torch.equal(predict(loaded, x), predict(model, x)) and loaded_accuracy == accuracy


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 8), (3, 28, 20)])
def test_small_cnn_takes_any_size_from_8_and_1_or_3_channels(shape) -> None:
    model = SmallCNN(in_channels=shape[0], num_classes=7).eval()
    x = torch.rand(2, *shape) * 2 - 1
    assert model.features(x).shape == (2, 128) and model(x).shape == (2, 7)


def test_load_or_train_trains_once_then_loads_from_the_cache(tmp_path) -> None:
    cfg_data = OmegaConf.create({"name": "digits"})
    dm = DigitsData()
    dm.setup()
    small = {"train": (dm.splits["train"][0][:100], dm.splits["train"][1][:100])}
    dm.splits = {**dm.splits, **small}  # a small training set keeps this test fast
    model, accuracy, path = load_or_train_classifier(cfg_data, dm, tmp_path)
    assert path == tmp_path / "classifier-digits-1x32x32.pt" and path.exists()
    again, accuracy_again, _ = load_or_train_classifier(cfg_data, dm, tmp_path)
    x = digits()["test"][0]
    assert accuracy_again == accuracy and torch.equal(predict(again, x), predict(model, x))


def test_unlabelled_data_is_a_ganlab_error(tmp_path) -> None:
    dm = DigitsData(labels=False)
    dm.setup()
    with pytest.raises(GanlabError, match="no labels"):
        load_or_train_classifier(OmegaConf.create({"name": "folder"}), dm, tmp_path)


def test_command_composes_conf_from_the_working_directory(trained, tmp_path, monkeypatch, capsys):
    model, accuracy, _ = trained
    cache = tmp_path / "data" / "classifiers" / "classifier-digits-1x32x32.pt"
    save_classifier(model, cache, accuracy, "digits")  # a cache hit: no training here
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "train.yaml").write_text(
        "defaults:\n  - _self_\n  - data: digits\npaths:\n  data_dir: elsewhere\n"
    )
    (tmp_path / "conf" / "data" / "digits.yaml").write_text(
        "_target_: test_classifier.DigitsData\nname: digits\n"
    )
    monkeypatch.chdir(tmp_path)
    assert classifier.main(["data=digits"]) == 0  # conf and data_dir default to ./conf, ./data
    out = capsys.readouterr().out
    assert f"held-out accuracy {accuracy:.4f}" in out and str(cache.resolve()) in out

    monkeypatch.chdir(tmp_path / "data")  # no conf/ here
    assert classifier.main(["data=digits"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no train.yaml in ") and err.count("\n") == 1
    assert "run from the repository root or pass config_dir=DIR" in err
    argv = ["data=digits", f"config_dir={tmp_path / 'conf'}", f"data_dir={tmp_path / 'data'}"]
    assert classifier.main(argv) == 0
    assert str(cache.resolve()) in capsys.readouterr().out
