"""ganlab.report's comparisons: bootstrap intervals of each group's mean over seeds, the
"best" mark only where the intervals support it, paired differences to a baseline, and the
images seen until a target value; on sweep folders written by the test with known numbers."""

import csv
import json
from pathlib import Path

import pytest

from ganlab.report import main as report_main


def _job(root: Path, name: str, loss: str, seed: int, final: dict, fid_log: dict) -> None:
    """A finished job as a sweep leaves it: overrides, config, metrics.json, event file."""
    from torch.utils.tensorboard import SummaryWriter

    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(f"- loss={loss}\n- seed={seed}\n")
    (job / ".hydra" / "config.yaml").write_text(
        f"seed: {seed}\nn_critic: ${{oc.select:loss.recommended.n_critic,1}}\n"
        "data:\n  batch_size: 64\n")
    (job / "metrics.json").write_text(json.dumps(
        {"steps": 2000, "images_seen": 128000, "wall_time_s": 10.0, **final}))
    writer = SummaryWriter(str(job))
    for step, value in fid_log.items():
        writer.add_scalar("metrics/fid", value, step)
    writer.close()


@pytest.fixture
def two_losses(tmp_path):
    # loss=hinge is the first group (the baseline); wgan_gp is 10 better in FID on each seed,
    # with a seed-to-seed spread of 1.
    hinge = {0: 30.0, 1: 32.0, 2: 31.0}
    wgan = {0: 20.0, 1: 21.0, 2: 22.0}
    precision = {0: 0.5, 1: 0.6, 2: 0.7}
    logs = {  # fid over training; wgan_gp seed 0 reaches 25 at step 2000, seed 1 at 1000
        ("hinge", s): {1000: 40.0, 2000: 35.0} for s in range(3)
    } | {("wgan_gp", 0): {1000: 30.0, 2000: 24.0}, ("wgan_gp", 1): {1000: 25.0, 2000: 21.0},
         ("wgan_gp", 2): {1000: 26.0, 2000: 26.0}}
    for i, (loss, fids) in enumerate((("hinge", hinge), ("wgan_gp", wgan))):
        for seed in range(3):
            final = {"metrics/fid": fids[seed], "metrics/precision": precision[seed]}
            _job(tmp_path, str(3 * i + seed), loss, seed, final, logs[loss, seed])
    return tmp_path


def test_report_intervals_paired_differences_and_best(two_losses):
    assert report_main([f"sweep={two_losses}", "target=metrics/fid:25"]) == 0
    rows = {r["group"]: r for r in csv.DictReader((two_losses / "report.csv").open())}
    hinge, wgan = rows["loss=hinge"], rows["loss=wgan_gp"]
    # Each interval lies within the range of its group's seeds and holds the mean.
    assert 30 <= float(hinge["metrics/fid_ci_low"]) < 31 < float(hinge["metrics/fid_ci_high"]) <= 32
    assert 20 <= float(wgan["metrics/fid_ci_low"]) < 21 < float(wgan["metrics/fid_ci_high"]) <= 22
    # wgan_gp's FID interval is clear of hinge's: best; precision is the same: no best.
    assert (wgan["metrics/fid_best"], hinge["metrics/fid_best"]) == ("True", "False")
    assert {r["metrics/precision_best"] for r in rows.values()} == {"False"}

    markdown = (two_losses / "report.md").read_text()
    assert "| loss=wgan_gp | 3 | 0 | 21 ± 1 [" in markdown and "] **best** |" in markdown
    # Paired over seeds: differences -10, -11, -9; precision differs by exactly 0.
    section = markdown.split("## Paired differences to the baseline: loss=hinge")[1]
    row = next(line for line in section.splitlines() if line.startswith("| loss=wgan_gp"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:2] == ["loss=wgan_gp", "3"]
    fid_mean, fid_low, fid_high = (float(x) for x in
                                   cells[2].replace("[", "").replace("]", "").replace(",", "")
                                   .split())
    assert fid_mean == -10 and -11 <= fid_low < -10 < fid_high <= -9
    assert cells[3] == "0 [0, 0]"

    # Images seen = step x 128000 / 2000 images per step; hinge never reaches 25.
    target = markdown.split("## Images seen until metrics/fid <= 25")[1]
    assert "| loss=hinge | 0/3 |" in target
    assert "seed 0: 128,000; seed 1: 64,000; seed 2: not reached" in target
    targets = {r["group"]: r for r in csv.DictReader((two_losses / "report_target.csv").open())}
    assert float(targets["loss=wgan_gp"]["images_seen_mean"]) == 96000
    assert (float(targets["loss=wgan_gp"]["ci_low"]), float(targets["loss=wgan_gp"]["ci_high"])
            ) == (64000, 128000)


def test_report_baseline_by_label_and_bad_options(two_losses, capsys):
    assert report_main([f"sweep={two_losses}", "baseline=loss=wgan_gp"]) == 0
    markdown = (two_losses / "report.md").read_text()
    section = markdown.split("## Paired differences to the baseline: loss=wgan_gp")[1]
    assert "| loss=hinge | 3 | 10 [" in section
    capsys.readouterr()
    assert report_main([f"sweep={two_losses}", "baseline=loss=adam"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: baseline='loss=adam' is not a group; the groups are "
                   "'loss=hinge', 'loss=wgan_gp'\n")
    for bad in ("metrics/fid", "metrics/fid:low", "metrics/sharpness:3"):
        assert report_main([f"sweep={two_losses}", f"target={bad}"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: target={bad} is not allowed: ") and err.count("\n") == 1
