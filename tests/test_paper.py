"""evaluation=paper: the published InceptionV3 file or nothing, checked before any work; TF32
off while evaluating; progress over the samples."""

from __future__ import annotations

import re

import pytest
import torch

from ganlab.errors import GanlabError
from ganlab.evaluation import build_evaluator
from ganlab.metrics import INCEPTION_SHA256, file_sha256, inception_weights_file
from ganlab.metrics.stream import full_precision


def _paper_settings(tmp_path, *overrides: str) -> dict:
    from conftest import compose_config

    return dict(compose_config(tmp_path, ["evaluation=paper", *overrides], tiny=False).evaluation)


def _digits():
    from ganlab.data import DigitsDataModule

    return DigitsDataModule(batch_size=16, image_size=16)


def test_paper_protocol_settings(tmp_path) -> None:
    settings = _paper_settings(tmp_path)
    assert settings["feature_net"] == "inception" and settings["num_samples"] == 50000
    assert settings["reference_split"] == "train" and settings["weights_sha256"] == (
        INCEPTION_SHA256)
    assert settings["progress"] is True and settings["density_coverage_k"] == 5


def test_paper_refuses_another_weights_file_before_any_work(tmp_path) -> None:
    weights = tmp_path / "my_inception.pth"
    torch.save({"not": torch.zeros(1)}, weights)
    settings = _paper_settings(tmp_path, f"evaluation.weights_path={weights}")
    message = (f"weights file {weights} has sha256 {file_sha256(weights)}, not the published "
               f"{INCEPTION_SHA256}; use the published file")
    with pytest.raises(GanlabError, match=re.escape(message)):
        build_evaluator(settings, _digits(), tmp_path)  # the evaluator checks it when made
    settings["weights_sha256"] = None  # accepted, and the protocol records its hash
    assert build_evaluator(settings, _digits(), tmp_path) is not None


def test_paper_without_weights_names_where_to_put_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    settings = _paper_settings(tmp_path)
    message = f"put weights-inception-2015-12-05-6726825d.pth in {tmp_path / 'checkpoints'}"
    with pytest.raises(GanlabError, match=re.escape(message)):
        build_evaluator(settings, _digits(), tmp_path)
    # pytorch-fid's name for the same file is found too.
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth").write_bytes(b"x")
    assert inception_weights_file().name == "pt_inception-2015-12-05-6726825d.pth"


def test_tf32_is_off_while_evaluating_and_restored_after() -> None:
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high")  # what a Lightning user often sets
    torch.backends.cudnn.allow_tf32 = True
    try:
        with full_precision():
            assert torch.get_float32_matmul_precision() == "highest"
            assert torch.backends.cudnn.allow_tf32 is False
        assert torch.get_float32_matmul_precision() == "high"
        assert torch.backends.cudnn.allow_tf32 is True
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]


def test_progress_bar_over_the_samples(tmp_path, capsys) -> None:
    from ganlab.classifier import SmallCNN
    from ganlab.metrics import ClassifierFeatures
    from ganlab.metrics.stream import stream_features

    torch.manual_seed(0)
    net = ClassifierFeatures(SmallCNN(in_channels=1, num_classes=10))
    images = torch.rand(30, 1, 16, 16) * 2 - 1
    features, logits = stream_features(net, lambda part: images[part], 30, progress=True,
                                       desc="generated", chunk=7)
    assert features.shape[0] == logits.shape[0] == 30
    assert torch.allclose(features, net(images)[0], atol=1e-5)  # chunks in order
    out = capsys.readouterr()
    assert out.out.startswith("\rgenerated:") and "/30 [" in out.out and out.err == ""


def test_a_saved_run_carries_the_paper_checks_but_no_paths() -> None:
    from ganlab.registry import Refused
    from ganlab.stored import evaluation_settings

    stored = {"evaluation": {"feature_net": "inception", "weights_sha256": INCEPTION_SHA256,
                             "density_coverage_k": 4, "weights_path": "/elsewhere/w.pth",
                             "progress": True}}
    assert evaluation_settings(stored) == {"feature_net": "inception", "density_coverage_k": 4,
                                           "weights_sha256": INCEPTION_SHA256}
    with pytest.raises(Refused, match="density_coverage_k is not allowed"):
        evaluation_settings({"evaluation": {"density_coverage_k": "5"}})
