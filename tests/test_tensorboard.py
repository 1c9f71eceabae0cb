"""What a user sees in TensorBoard, read back from the event files and from a real
TensorBoard server on 127.0.0.1."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganlab.train import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from conftest import compose_config

    out = tmp_path_factory.mktemp("tb_run")
    train(
        compose_config(
            out,
            [
                "model=dcgan",
                "data=digits",
                "data.batch_size=16",
                "trainer.max_steps=4",
                "trainer.log_every_n_steps=2",
                "callbacks.sample_grid.every_n_steps=2",
                "callbacks.diagnostics.every_n_steps=2",
                "callbacks.evaluation.every_n_steps=2",
            ],
        )
    )
    return out


def test_event_files_hold_scalars_histograms_images_and_hparams(run_dir):
    acc = EventAccumulator(
        str(run_dir), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0}
    ).Reload()
    tags = acc.Tags()
    assert {
        "train/d_loss",
        "train/g_loss",
        "grad_norm/generator",
        "grad_norm/discriminator",
        "lr/generator",
        "lr/discriminator",
        "metrics/fid",
    } <= set(tags["scalars"])
    assert {"d_output/real", "d_output/fake"} <= set(tags["histograms"])
    assert [e.step for e in acc.Histograms("d_output/real")] == [2, 4]
    assert {"samples/grid", "samples/interpolation"} <= set(tags["images"])
    assert acc.Scalars("lr/generator")[0].value == pytest.approx(2e-4)
    # Evaluations at steps 2 and 4 (the final metrics at 4 too), none at step 0.
    assert {e.step for e in acc.Scalars("metrics/fid")} == {2, 4}
    hparams = acc.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in hparams
    assert b"model.name" in hparams["_hparams_/session_start_info"]
    assert "custom_scalars__config__" in acc.PluginTagToContent("custom_scalars")
    layout = acc.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0]
    assert b"D and G loss" in layout and b"train/d_loss" in layout and b"train/g_loss" in layout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, body: dict | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_a_real_tensorboard_server_serves_the_run(run_dir):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(run_dir),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        runs = None
        while time.monotonic() < deadline:
            try:
                runs = get(f"{base}/data/runs")
                if runs:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert runs, "TensorBoard did not serve the run within 90 s"
        run = runs[0]
        scalar_tags = get(f"{base}/data/plugin/scalars/tags")[run]
        assert {"train/d_loss", "train/g_loss", "metrics/fid"} <= set(scalar_tags)
        served = get(f"{base}/data/plugin/scalars/scalars?run={run}&tag=train/d_loss")
        acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
        expected = [(e.step, e.value) for e in acc.Scalars("train/d_loss")]
        assert [(s, pytest.approx(v)) for _, s, v in served] == expected
        image_tags = get(f"{base}/data/plugin/images/tags")[run]
        assert "samples/grid" in image_tags
        experiment = get(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
        names = {h["name"] for h in experiment["hparamInfos"]}
        assert {"model.name", "seed", "n_critic"} <= names
        metric_tags = {m["name"]["tag"] for m in experiment["metricInfos"]}
        assert "metrics/fid" in metric_tags
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.mark.slow
def test_gallery_script_runs_on_a_short_training(tmp_path):
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "scripts" / "gallery.py"),
            "steps=2",
            f"out={tmp_path / 'g'}",
            f"runs={tmp_path / 'runs'}",
            f"data_dir={tmp_path / 'data'}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    pictures = sorted(p.name for p in (tmp_path / "g").glob("*.png"))
    assert pictures == [
        "cyclegan_digits.png", "dcgan_digits.png", "mlp_digits.png", "mlp_ring8.png",
        "sngan_digits.png", "stylegan_digits.png",
    ]
