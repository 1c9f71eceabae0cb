"""Evaluation at the end of a run, during it (best.ckpt), and from a checkpoint."""

import json
import math
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganlab.evaluate import main as evaluate_main
from ganlab.evaluation import metric_mode
from ganlab.train import train

DIGITS = ["model=dcgan", "data=digits", "data.batch_size=16", "trainer.max_steps=4"]
IMAGE_METRICS = {"fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall",
                 "classes_generated", "class_kl"}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from conftest import compose_config

    out = tmp_path_factory.mktemp("digits_eval")
    cfg = compose_config(out, [*DIGITS, "callbacks.evaluation.every_n_steps=2",
                               "callbacks.evaluation.monitor=metrics/fid",
                               "optimized_metric=metrics/fid"])
    return out, train(cfg)


def test_final_image_metrics_and_their_protocol(digits_run):
    out, metrics = digits_run
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert {f"metrics/{k}" for k in IMAGE_METRICS} <= set(saved)
    assert saved["metrics/fid"] > 0 and 0 <= saved["metrics/precision"] <= 1
    assert 1 <= saved["metrics/classes_generated"] <= 10
    assert saved["protocol/feature_net"] == "classifier"
    assert len(saved["protocol/feature_net_sha256"]) == 64
    assert saved["protocol/num_fake"] == 400
    assert saved["protocol/num_real"] == 1437  # the digits train split
    assert saved["protocol/split"] == "train"
    assert saved["protocol/step"] == 4 and saved["protocol/seed"] == 0
    assert saved["protocol/ema"] is False


def test_evaluation_during_training_logs_metrics_and_keeps_best(digits_run):
    out, _ = digits_run
    acc = EventAccumulator(str(out), size_guidance={"scalars": 0}).Reload()
    assert [e.step for e in acc.Scalars("metrics/fid")][:2] == [2, 4]
    assert (out / "checkpoints" / "best.ckpt").is_file()


def test_evaluate_command_reproduces_the_final_metrics(digits_run, capsys, data_dir):
    out, metrics = digits_run
    ckpt = out / "checkpoints" / "last.ckpt"
    assert evaluate_main([f"checkpoint={ckpt}", "num_samples=400", f"data_dir={data_dir}"]) == 0
    printed = capsys.readouterr().out
    assert "metrics/fid" in printed and "last.metrics.json" in printed
    written = json.loads((out / "checkpoints" / "last.metrics.json").read_text())
    for key in (f"metrics/{k}" for k in IMAGE_METRICS):
        assert written[key] == pytest.approx(metrics[key], rel=1e-5, abs=1e-6), key


def test_an_export_folder_evaluates_as_its_checkpoint(digits_run, tmp_path, capsys, data_dir):
    from ganlab.export import main as export_main

    out, _ = digits_run
    ckpt = out / "checkpoints" / "last.ckpt"
    folder = tmp_path / "export"
    assert export_main([f"checkpoint={ckpt}", f"output={folder}", "num_samples=4"]) == 0
    common = ["num_samples=300", f"data_dir={data_dir}"]
    assert evaluate_main([f"checkpoint={folder}", *common]) == 0
    assert f"wrote {folder / 'metrics.json'}" in capsys.readouterr().out
    assert evaluate_main([f"checkpoint={ckpt}", *common]) == 0
    from_folder = json.loads((folder / "metrics.json").read_text())
    from_ckpt = json.loads((out / "checkpoints" / "last.metrics.json").read_text())
    assert from_folder == from_ckpt  # same weights, data, protocol and seed: the same numbers
    assert from_folder["protocol/num_fake"] == 300


def test_mixture_metrics_in_metrics_json(make_config):
    metrics = train(make_config(["model=mlp", "data=ring8", "data.batch_size=32",
                                 "trainer.max_steps=2", "optimized_metric=metrics/modes"]))
    assert metrics["protocol/num_fake"] == 2500
    assert math.isfinite(metrics["metrics/reverse_kl"])


def test_evaluation_none(make_config):
    metrics = train(make_config(["model=mlp", "data=ring8", "data.batch_size=32",
                                 "trainer.max_steps=2", "evaluation=none", "logger=none"]))
    assert not [k for k in metrics if k.startswith("metrics/")]


def test_metric_directions():
    assert metric_mode("metrics/fid") == "min" and metric_mode("metrics/modes") == "max"


@pytest.mark.parametrize(
    "args,message",
    [
        (["checkpoint=/no/such.ckpt"], "no such file"),
        (["num_samples=1"], "num_samples=1"),
        (["num_samples=50"], "kid_subset_size=100 is larger than"),
        (["feature_net=resnet"], "feature_net='resnet' is not allowed"),
        (["feature_net=inception", "weights_path=/no/weights.pth"], "weights"),
        (["colour=red"], "colour"),
    ],
)
def test_bad_input_gives_one_line(digits_run, capsys, data_dir, args, message):
    out, _ = digits_run
    argv = {"checkpoint": str(out / "checkpoints" / "last.ckpt"), "data_dir": str(data_dir)}
    argv |= dict(a.split("=", 1) for a in args)
    assert evaluate_main([f"{k}={v}" for k, v in argv.items()]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_not_a_checkpoint(tmp_path, capsys):
    bad = tmp_path / "x.ckpt"
    bad.write_text("hello")
    assert evaluate_main([f"checkpoint={bad}"]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert not Path(tmp_path / "x.metrics.json").exists()
