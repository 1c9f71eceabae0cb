"""Multirun sweeps through the real CLI: failed jobs, and the multi-seed report."""

import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONF, ROOT
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ganlab.report import main as report_main

TRAIN = str(ROOT / "train.py")
TINY_RING8 = [
    "model=mlp",
    "data=ring8",
    "model.generator.hidden=[16]",
    "model.discriminator.hidden=[16]",
    "model.latent_dim=4",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def run(args: list[str], cwd: Path, module: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", module] if module else [sys.executable, TRAIN]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def sweep_dir(cwd: Path) -> Path:
    (found,) = (cwd / "outputs" / "multirun").glob("*/*")
    return found


@pytest.mark.slow
def test_failed_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    # job 0 has n_critic=0 (rejected), job 1 is fine and must still run
    args = ["-m", *TINY_RING8, "trainer.max_steps=2", "evaluation=none", "logger=none"]
    proc = run([*args, "n_critic=0,1"], tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    sweep = sweep_dir(tmp_path)
    failed, done = sweep / "0", sweep / "1"
    assert (failed / "error.txt").read_text().splitlines()[0] == (
        "n_critic=0 is not allowed: it must be an integer >= 1"
    )
    assert not (failed / "metrics.json").exists()
    assert json.loads((done / "metrics.json").read_text())["steps"] == 2
    assert not (done / "error.txt").exists()
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2, proc.stderr[-3000:]  # one per failed job, then the count
    assert errors[0].startswith("error: job 0 (") and "n_critic=0)" in errors[0]
    assert errors[0].endswith("failed: n_critic=0 is not allowed: it must be an integer >= 1")
    assert errors[1].startswith("error: 1 job(s) failed")

    assert report_main([f"sweep={sweep}"]) == 0
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [(r["group"], r["n"], r["failed"]) for r in rows] == [
        ("n_critic=0", "0", "1"),
        ("n_critic=1", "1", "0"),
    ]
    assert rows[1]["steps_mean"] == "2.0" and rows[1]["steps_std"] == ""  # n = 1: no std
    assert "## Failed jobs (1)" in (sweep / "report.md").read_text()


@pytest.mark.slow
def test_report_of_two_losses_by_two_seeds(tmp_path):
    args = [
        "-m",
        *TINY_RING8,
        "trainer.max_steps=4",
        "trainer.log_every_n_steps=1",
        "callbacks.evaluation.every_n_steps=2",
        "loss=nonsaturating,hinge",
        "seed=0,1",
    ]
    proc = run(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = sweep_dir(tmp_path)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]

    proc = run([f"sweep={sweep}"], tmp_path, module="ganlab.report")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"wrote report.md, report.csv and 5 plot(s) to {sweep}" in proc.stdout

    rows = {r["group"]: r for r in csv.DictReader((sweep / "report.csv").open())}
    assert set(rows) == {"loss=nonsaturating", "loss=hinge"}
    for loss, row in rows.items():
        jobs = [
            json.loads((d / "metrics.json").read_text())
            for d in sweep.iterdir()
            if d.is_dir() and f"- {loss}" in (d / ".hydra" / "overrides.yaml").read_text()
        ]
        assert len(jobs) == int(row["n"]) == 2 and row["failed"] == "0"
        for key in ("metrics/modes", "metrics/hq_fraction", "metrics/reverse_kl", "wall_time_s"):
            values = [job[key] for job in jobs]
            assert float(row[f"{key}_mean"]) == pytest.approx(statistics.fmean(values))
            assert float(row[f"{key}_std"]) == pytest.approx(statistics.stdev(values))
        assert float(row["steps_mean"]) == 4 and float(row["steps_std"]) == 0

    markdown = (sweep / "report.md").read_text()
    assert "| loss=hinge | 2 | 0 |" in markdown
    for tag in ("train_d_loss", "train_g_loss", "metrics_modes", "metrics_reverse_kl"):
        png = sweep / f"plot_{tag}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({png.name})" in markdown

    # A folder of several sweeps is reported as one comparison: here each loss in a sweep
    # of its own, with the same rows as the one sweep.
    parent = tmp_path / "two_sweeps"
    for job in (d for d in sweep.iterdir() if d.is_dir()):
        loss = "hinge" if "- loss=hinge" in (job / ".hydra" / "overrides.yaml").read_text() else "ns"
        shutil.copytree(job, parent / loss / job.name)
    assert report_main([f"sweep={parent}"]) == 0
    merged = {r["group"]: r for r in csv.DictReader((parent / "report.csv").open())}
    assert merged == rows


def test_report_of_bad_input_fails_with_one_line(tmp_path, capsys):
    assert report_main([f"sweep={tmp_path / 'nowhere'}"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nowhere'} is not a directory\n"
    assert report_main([f"sweep={tmp_path}"]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path} holds no jobs (no .hydra/overrides.yaml under it)\n"
    )
    job = tmp_path / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- loss=hinge\n- lr=[1,\n")  # edited by hand
    (job / "metrics.json").write_text(json.dumps({"metrics/modes": 8.0}))
    assert report_main([f"sweep={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {job / '.hydra' / 'overrides.yaml'} holds an override Hydra")
    assert err.count("\n") == 1 and "fix the file or move that job" in err
    assert not (tmp_path / "report.md").exists()


@pytest.mark.slow
def test_optuna_search_runs_trials_and_returns_the_best(tmp_path):
    args = ["-m", "hparams_search=optuna", *TINY_RING8, "trainer.max_steps=3", "logger=none"]
    proc = run([*args, "hydra.sweeper.n_trials=2"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = sweep_dir(tmp_path)
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert set(results.best_params) == {
        "optimizer.generator.lr",
        "optimizer.discriminator.lr",
        "optimizer.generator.betas.0",
        "optimizer.discriminator.betas.0",
        "n_critic",
        "loss",
    }
    trials = [json.loads((sweep / job / "metrics.json").read_text()) for job in ("0", "1")]
    assert results.best_value == min(t["metrics/reverse_kl"] for t in trials)


@pytest.mark.slow
def test_submitit_local_runs_the_jobs_and_records_a_failure(tmp_path):
    # The code path of hydra/launcher=slurm, with submitit's local executor.
    args = ["-m", "hydra/launcher=submitit_local", *TINY_RING8, "trainer.max_steps=2"]
    proc = run([*args, "evaluation=none", "logger=none", "n_critic=0,1"], tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    sweep = sweep_dir(tmp_path)
    assert (sweep / ".submitit").is_dir()
    assert (sweep / "0" / "error.txt").read_text().startswith("n_critic=0 is not allowed")
    assert json.loads((sweep / "1" / "metrics.json").read_text())["steps"] == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: 1 job(s) failed")


def test_slurm_launcher_config_composes():
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node) == ("gpu", 1)
    assert launcher.timeout_min > 0 and launcher.mem_gb > 0


def test_jobs_group_by_value_whatever_the_spelling_and_order(tmp_path):
    from ganlab.report import Job, group_jobs, group_labels

    metrics = {"metrics/modes": 8.0}
    jobs = [  # a single run records the value as typed, a multirun's sweeper as parsed
        Job(tmp_path / "a", ["loss=hinge", "lr=1e-3", "seed=0", "flag=false"], metrics),
        Job(tmp_path / "b", ["seed=1", "flag=False", "loss=hinge", "lr=0.001"], metrics),
        Job(tmp_path / "c", ["loss=hinge", "lr=0.001", "seed=2", "flag=True"], metrics),
    ]
    groups = group_jobs(jobs)
    assert [[j.dir.name for j in g.jobs] for g in groups] == [["a", "b"], ["c"]]
    assert groups[0].key == ("loss=hinge", "lr=0.001", "flag=False")
    assert group_labels(groups) == ["flag=False", "flag=True"]


def test_group_labels_show_what_differs():
    from ganlab.report import Group, group_labels

    shared = ("experiment=grid25", "trainer.max_steps=4000")
    groups = [Group(shared), Group((*shared, "regularizer=r1")), Group((*shared, "optimizer=ttur"))]
    assert group_labels(groups) == ["(no other overrides)", "regularizer=r1", "optimizer=ttur"]
    assert group_labels([Group(shared)]) == [" ".join(shared)]
    assert group_labels([Group(())]) == ["(all jobs)"]
