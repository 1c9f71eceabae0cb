"""Multi-seed report of a sweep: ``python -m ganlab.report sweep=outputs/multirun/<date>/<time>``.

The jobs are the run directories (those with ``.hydra/overrides.yaml``) anywhere under the
directory given, so a folder of several sweeps (``outputs/multirun/<date>``) is reported
as one comparison. Jobs are grouped by their overrides (``.hydra/overrides.yaml``) except ``seed``. For each
group, ``report.csv`` and ``report.md`` give every final metric of ``metrics.json``
(``metrics/*``, ``wall_time_s``, ``steps``) as mean and sample standard deviation over the
seeds that finished, with their number ``n``; failed jobs (``error.txt``, or no
``metrics.json``) are counted and listed. ``plot_<tag>.png`` shows each TensorBoard scalar
(``train/d_loss``, ``train/g_loss``, ``metrics/*``) over generator steps: one line per
group, the mean over seeds, with a band from the lowest to the highest seed.
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException

from ganlab.cli import arg, run_command
from ganlab.errors import GanlabError
from ganlab.sweep import ERROR_FILE, job_overrides

FINAL_KEYS = ("steps", "wall_time_s")
PLOTTED = ("train/d_loss", "train/g_loss")
_PARSER = OverridesParser.create()


@dataclass
class Job:
    dir: Path
    overrides: list[str]
    metrics: dict[str, float] | None  # None: the job failed
    error: str = ""


@dataclass
class Group:
    key: tuple[str, ...]  # overrides except seed
    jobs: list[Job] = field(default_factory=list)

    @property
    def done(self) -> list[Job]:
        return [j for j in self.jobs if j.metrics is not None]

    @property
    def failed(self) -> list[Job]:
        return [j for j in self.jobs if j.metrics is None]


def load_jobs(sweep_dir: Path) -> list[Job]:
    job_dirs = [p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")]
    jobs = []
    for job_dir in sorted(job_dirs, key=lambda p: (str(p.parent), len(p.name), p.name)):
        error_file, metrics_file = job_dir / ERROR_FILE, job_dir / "metrics.json"
        if error_file.is_file():
            lines = error_file.read_text().splitlines()
            job = Job(job_dir, job_overrides(job_dir), None, lines[0] if lines else "failed")
        elif metrics_file.is_file():
            raw = json.loads(metrics_file.read_text())
            final = {
                k: float(v)
                for k, v in raw.items()
                if (k.startswith("metrics/") or k in FINAL_KEYS) and isinstance(v, int | float)
            }
            job = Job(job_dir, job_overrides(job_dir), final)
        else:
            job = Job(job_dir, job_overrides(job_dir), None, "no metrics.json (still running?)")
        jobs.append(job)
    return jobs


def canonical_override(override: Override) -> str:
    """``key=value`` as Hydra reads it: ``flag=false`` / ``flag=False`` and ``lr=1e-3`` /
    ``lr=0.001`` are the same value. A single run records the command line as typed while a
    multirun's sweeper writes the parsed value back (``False``), so without this a run and a
    sweep of the same setting would be two groups."""
    if override.is_delete() and override.value() is None:  # ~key
        return override.get_key_element()
    return f"{override.get_key_element()}={override.get_value_element_as_str()}"


def grouping_key(job: Job) -> tuple[str, ...]:
    """The job's overrides except seed, canonical, in the order they were given."""
    try:
        parsed = _PARSER.parse_overrides(list(job.overrides))
    except OverrideParseException as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(
            f"{job.dir / '.hydra' / 'overrides.yaml'} holds an override Hydra cannot read"
            f" ({first}); fix the file or move that job out of the folder"
        ) from None
    return tuple(canonical_override(o) for o in parsed if o.key_or_group != "seed")


def group_jobs(jobs: Sequence[Job]) -> list[Group]:
    """Groups by the set of overrides except seed, read as values (their order and spelling
    on the command line do not split a group); each group keeps its first job's order."""
    groups: dict[frozenset[str], Group] = {}
    for job in jobs:
        key = grouping_key(job)
        groups.setdefault(frozenset(key), Group(key)).jobs.append(job)
    return list(groups.values())


def group_labels(groups: Sequence[Group]) -> list[str]:
    """Each group's overrides that not all groups share (the shared ones say nothing)."""
    shared = set.intersection(*(set(g.key) for g in groups)) if len(groups) > 1 else set()
    alone = "(all jobs)" if len(groups) == 1 else "(no other overrides)"  # e.g. a baseline
    return [" ".join(o for o in g.key if o not in shared) or alone for g in groups]


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1); None when there is one value."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _fmt(x: float | None) -> str:
    return "" if x is None or math.isnan(x) else f"{x:.4g}"


def metric_names(groups: Sequence[Group]) -> list[str]:
    names = {k for g in groups for j in g.done for k in j.metrics}
    return sorted(names, key=lambda k: (k in FINAL_KEYS, k))


def write_tables(groups: Sequence[Group], sweep_dir: Path) -> str:
    """report.csv and report.md; returns the Markdown."""
    labels, names = group_labels(groups), metric_names(groups)
    rows = []
    for label, group in zip(labels, groups, strict=True):
        row: dict[str, object] = {"group": label, "n": len(group.done), "failed": len(group.failed)}
        for name in names:
            values = [j.metrics[name] for j in group.done if name in j.metrics]
            mean, std = mean_std(values) if values else (None, None)
            row[f"{name}_mean"], row[f"{name}_std"] = mean, std
        rows.append(row)
    with open(sweep_dir / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)

    lines = [
        f"# Sweep report: {sweep_dir}",
        "",
        "Mean ± sample std over seeds; n: seeds that finished.",
        "",
        "| group | n | failed | " + " | ".join(names) + " |",
        "| --- | --- | --- |" + " --- |" * len(names),
    ]
    for row in rows:
        cells = [
            _fmt(row[f"{n}_mean"])
            + (f" ± {_fmt(row[f'{n}_std'])}" if row[f"{n}_std"] is not None else "")
            for n in names
        ]
        lines.append(
            f"| {row['group']} | {row['n']} | {row['failed']} | " + " | ".join(cells) + " |"
        )
    failed = [j for g in groups for j in g.failed]
    if failed:
        lines += ["", f"## Failed jobs ({len(failed)})", ""]
        lines += [f"- job {j.dir.name} ({' '.join(j.overrides)}): {j.error}" for j in failed]
    return "\n".join(lines) + "\n"


def read_scalars(job_dir: Path) -> dict[str, dict[int, float]]:
    """TensorBoard scalars of one job: tag -> {step: value} for the plotted tags."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not any(job_dir.glob("events.out.tfevents.*")):
        return {}
    acc = EventAccumulator(str(job_dir), size_guidance={"scalars": 0}).Reload()
    tags = [t for t in acc.Tags()["scalars"] if t in PLOTTED or t.startswith("metrics/")]
    return {t: {e.step: e.value for e in acc.Scalars(t)} for t in tags}


def plot_file_name(tag: str) -> str:
    return "plot_" + re.sub(r"[^A-Za-z0-9]+", "_", tag).strip("_") + ".png"


def write_plots(groups: Sequence[Group], sweep_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scalars = [[read_scalars(j.dir) for j in g.done] for g in groups]
    tags = sorted({t for per_group in scalars for job in per_group for t in job})
    written = []
    for tag in tags:
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, per_group in zip(group_labels(groups), scalars, strict=True):
            series = [job[tag] for job in per_group if tag in job]
            if not series:
                continue
            steps = np.array(sorted(set().union(*series)))
            # (seeds, steps); NaN where a seed did not log that step
            values = np.array([[s.get(int(t), np.nan) for t in steps] for s in series])
            mean = np.nanmean(values, axis=0)
            (line,) = ax.plot(steps, mean, label=f"{label} (n={len(series)})")
            if len(series) > 1:
                low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
                ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
        ax.set(xlabel="generator step", ylabel=tag, title=f"{tag}: mean over seeds, min..max")
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = sweep_dir / plot_file_name(tag)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def report(sweep_dir: Path) -> tuple[str, list[Path]]:
    """Write report.md, report.csv and the plots into ``sweep_dir``."""
    if not sweep_dir.is_dir():
        raise ValueError(f"{sweep_dir} is not a directory")
    jobs = load_jobs(sweep_dir)
    if not jobs:
        raise ValueError(f"{sweep_dir} holds no jobs (no .hydra/overrides.yaml under it)")
    groups = group_jobs(jobs)
    markdown = write_tables(groups, sweep_dir)
    plots = write_plots(groups, sweep_dir)
    if plots:
        markdown += "\n## Over training\n\n" + "".join(f"![{p.stem}]({p.name})\n" for p in plots)
    (sweep_dir / "report.md").write_text(markdown)
    return markdown, plots


@dataclass
class ReportArgs:
    sweep: str = arg(help="a sweep's folder, or a folder of several sweeps", metavar="DIR")


def run_report(args: ReportArgs) -> int:
    """The command's body: write the report and print its tables."""
    sweep_dir = Path(args.sweep)
    try:
        markdown, plots = report(sweep_dir)
    except ValueError as err:  # what is wrong with the folder or a job's files, in one line
        raise GanlabError(str(err)) from None
    print(markdown.split("\n## Over training")[0], end="")
    print(f"wrote report.md, report.csv and {len(plots)} plot(s) to {sweep_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(
        ReportArgs,
        run_report,
        argv,
        prog="python -m ganlab.report",
        summary="Multi-seed report of a sweep: report.md, report.csv and plot_*.png, written\n"
        "into the folder; the jobs are the run directories anywhere under it.",
    )


if __name__ == "__main__":
    sys.exit(main())
