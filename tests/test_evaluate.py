"""Evaluation at the end of a run, during it (best.ckpt), and from a checkpoint."""

import json
import math
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganlab.directions import metric_mode
from ganlab.evaluate import main as evaluate_main
from ganlab.train import train

DIGITS = ["model=dcgan", "data=digits", "data.batch_size=16", "trainer.max_steps=4"]
IMAGE_METRICS = {"fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall",
                 "density", "coverage", "classes_generated", "class_kl"}
# The composed digits config of the digits_run fixture's data and evaluation sizes.
TINY_DIGITS = ("overrides=[data.image_size=16,evaluation.kid_subset_size=100,"
               "evaluation.density_coverage_k=4]")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from conftest import compose_config

    out = tmp_path_factory.mktemp("digits_eval")
    cfg = compose_config(out, [*DIGITS, "callbacks.evaluation.every_n_steps=2",
                               "callbacks.evaluation.monitor=metrics/fid",
                               "optimized_metric=metrics/fid", "evaluation.density_coverage_k=4"])
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
    assert saved["protocol/ema"] is False and saved["protocol/tf32"] is False
    assert saved["protocol/truncation_psi"] == 1.0 and len(saved["protocol/data_sha256"]) == 64


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
    assert written["protocol/dc_k"] == metrics["protocol/dc_k"] == 4  # the run's, not 5


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


def test_samples_of_a_checkpoint_score_as_the_checkpoint(digits_run, tmp_path, data_dir):
    # ganlab.sample's latents for seed 0 are the evaluation's for seed 0, so scoring its .npz
    # against data=digits (composed from conf/) gives the checkpoint's own numbers.
    from ganlab.sample import main as sample_main

    out, metrics = digits_run
    npz = tmp_path / "samples.npz"
    ckpt = out / "checkpoints" / "last.ckpt"
    assert sample_main([f"checkpoint={ckpt}", "num_samples=400", f"output={npz}"]) == 0
    assert evaluate_main([f"samples={npz}", "data=digits", "num_samples=400",
                          f"data_dir={data_dir}", TINY_DIGITS]) == 0
    written = json.loads((tmp_path / "samples.metrics.json").read_text())
    for key in (f"metrics/{k}" for k in IMAGE_METRICS):
        assert written[key] == pytest.approx(metrics[key], rel=1e-5, abs=1e-6), key
    assert written["protocol/num_fake"] == 400 and written["protocol/step"] is None
    assert written["protocol/samples"] == str(npz)
    assert written["protocol/data_sha256"] == metrics["protocol/data_sha256"]


def test_a_folder_of_images_is_scored_and_checked_for_size(tmp_path, data_dir, capsys):
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits().images[:120]  # 8x8 in 0..16
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(digits):
        Image.fromarray((image * 255 / 16).astype(np.uint8)).resize((16, 16)).save(
            folder / f"{i}.png")
    args = [f"samples={folder}", "data=digits", f"data_dir={data_dir}", "num_samples=120"]
    assert evaluate_main([*args, TINY_DIGITS]) == 0
    scored = json.loads((tmp_path / "pngs.metrics.json").read_text())
    assert scored["protocol/num_fake"] == 120 and scored["metrics/classes_generated"] == 10
    capsys.readouterr()
    assert evaluate_main([*args, "overrides=[evaluation.kid_subset_size=100]"]) == 2
    assert capsys.readouterr().err == (
        f"error: samples={folder} holds images of 16x16 with 1 channel but data=digits has "
        "images of 32x32 with 1 channel; make samples of the data's size and channels, or "
        "set data.image_size / data.channels in overrides\n")


def test_points_in_data_coordinates_are_scored_against_a_mixture(tmp_path):
    import numpy as np
    import torch

    from ganlab.data.mixtures import Ring

    centers = Ring(batch_size=8).centers  # in data coordinates
    npz = tmp_path / "points.npz"
    np.savez(npz, samples=centers.repeat(10, 1).numpy())
    assert evaluate_main([f"samples={npz}", "data=ring8", "num_samples=80"]) == 0
    scored = json.loads((tmp_path / "points.metrics.json").read_text())
    assert scored["metrics/modes"] == 8 and scored["metrics/hq_fraction"] == 1.0
    assert scored["metrics/reverse_kl"] == pytest.approx(0.0, abs=1e-12)
    assert torch.isfinite(torch.tensor(scored["metrics/reverse_kl"]))


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "pass exactly one of checkpoint=PATH"),
        (["checkpoint=a.ckpt", "samples=b.npz"], "pass exactly one of checkpoint=PATH"),
        (["samples=b.npz"], "samples= needs data=NAME"),
        (["checkpoint=a.ckpt", "data=digits"], "data= is for samples="),
        (["samples={npz}", "data=mnistt"], "data=mnistt is not allowed: it must be one of"),
        (["samples={npz}", "data=ring8"], "holds 5 samples but evaluation.num_samples is 2500"),
        (["samples={npz}", "data=ring8", "evaluation=nope"], "evaluation=nope is not allowed"),
        (["samples={npz}", "data=ring8", "overrides=[data.radius=oops]"], "data.radius='oops'"),
        (["samples={npz}", "data=ring8", "overrides=[data.nokey=1]"], "cannot compose"),
        (["samples={bad}", "data=ring8"], "holds no array 'samples'"),
        (["samples={npz}", "data=digits"], "samples of shape [2] but data=digits"),
    ],
)
def test_bad_samples_input_gives_one_line(tmp_path, capsys, args, message):
    import numpy as np

    npz, bad = tmp_path / "p.npz", tmp_path / "bad.npz"
    np.savez(npz, samples=np.zeros((5, 2), np.float32))
    np.savez(bad, images=np.zeros((5, 2), np.float32))
    argv = [a.format(npz=npz, bad=bad) for a in args]
    assert evaluate_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
