"""Multi-seed report of a sweep: ``python -m ganlab.report sweep=outputs/multirun/<date>/<time>``.

The jobs are the run directories (those with ``.hydra/overrides.yaml``) anywhere under the
directory given, so a folder of several sweeps (``outputs/multirun/<date>``) is reported
as one comparison. Jobs are grouped by their overrides (``.hydra/overrides.yaml``) except ``seed``. For each
group, ``report.csv`` and ``report.md`` give every final metric of ``metrics.json``
(``metrics/*``, ``wall_time_s``, ``steps``) as mean and sample standard deviation over the
seeds that finished, with their number ``n`` and a bootstrap interval of the mean, a "best"
mark where the intervals support one, and the paired differences to a baseline group
(ganlab.report_compare); failed jobs (``error.txt``, or no ``metrics.json``) are counted
and listed. ``target=metrics/fid:20`` adds the images seen until each group reached that
value. ``plot_<tag>.png`` shows each TensorBoard scalar (``train/d_loss``,
``train/g_loss``, ``metrics/*``) over generator steps: one line per group, the mean over
seeds, with a band from the lowest to the highest seed.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException

from ganlab import report_compare
from ganlab.cli import arg, run_command
from ganlab.errors import GanlabError
from ganlab.report_compare import FINAL_KEYS
from ganlab.sweep import ERROR_FILE, job_overrides

PLOTTED = ("train/d_loss", "train/g_loss")
_PARSER = OverridesParser.create()


@dataclass
class Job:
    dir: Path
    overrides: list[str]
    metrics: dict[str, float] | None  # None: the job failed
    error: str = ""
    seed: int | None = None  # pairs the job with its twins in other groups
    images_per_step: float | None = None  # images seen per generator step (all processes)


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
            job.images_per_step = _images_per_step(raw, _stored_config(job_dir))
        else:
            job = Job(job_dir, job_overrides(job_dir), None, "no metrics.json (still running?)")
        job.seed = _seed(job.overrides, _stored_config(job_dir))
        jobs.append(job)
    return jobs


def _stored_config(job_dir: Path) -> dict:
    """The job's .hydra/config.yaml as plain YAML data (nothing resolved); {} if unreadable."""
    try:
        config = yaml.safe_load((job_dir / ".hydra" / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def _seed(overrides: list[str], config: dict) -> int | None:
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+") == "seed" and value.lstrip("-").isdigit():
            return int(value)
    seed = config.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def _images_per_step(metrics: dict, config: dict) -> float | None:
    """From metrics.json (images_seen / steps, which counts every process and n_critic), else
    data.batch_size x n_critic of the stored config when both are plain integers."""
    seen, steps = metrics.get("images_seen"), metrics.get("steps")
    if isinstance(seen, int | float) and isinstance(steps, int | float) and steps > 0:
        return seen / steps
    batch = (config.get("data") or {}).get("batch_size")
    n_critic = config.get("n_critic", 1)
    if isinstance(batch, int) and isinstance(n_critic, int):
        return float(batch * n_critic)
    return None


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


def write_plots(groups: Sequence[Group], sweep_dir: Path,
                scalars: list[list[dict[str, dict[int, float]]]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def report(sweep_dir: Path, baseline: str | None = None,
           target: str | None = None) -> tuple[str, list[Path]]:
    """Write report.md, report.csv (report_target.csv with ``target``) and the plots into
    ``sweep_dir``; ``baseline``: the label of the group the others are compared with (None:
    the first)."""
    if not sweep_dir.is_dir():
        raise ValueError(f"{sweep_dir} is not a directory")
    if target is not None:
        report_compare.parse_target(target)  # a bad target fails before any work
    jobs = load_jobs(sweep_dir)
    if not jobs:
        raise ValueError(f"{sweep_dir} holds no jobs (no .hydra/overrides.yaml under it)")
    groups = group_jobs(jobs)
    labels = group_labels(groups)
    if baseline is not None and baseline not in labels:
        raise ValueError(f"baseline={baseline!r} is not a group; the groups are "
                         + ", ".join(repr(label) for label in labels))
    markdown = report_compare.write_tables(groups, labels, sweep_dir)
    if len(groups) > 1:
        base = labels.index(baseline) if baseline is not None else 0
        diffs = report_compare.differences(groups, labels, base)
        markdown += "\n" + diffs if diffs else ""
    scalars = [[read_scalars(j.dir) for j in g.done] for g in groups]
    if target is not None:
        markdown += "\n" + report_compare.time_to_target(groups, labels, scalars, target,
                                                          sweep_dir)
    plots = write_plots(groups, sweep_dir, scalars)
    if plots:
        markdown += "\n## Over training\n\n" + "".join(f"![{p.stem}]({p.name})\n" for p in plots)
    (sweep_dir / "report.md").write_text(markdown)
    return markdown, plots


@dataclass
class ReportArgs:
    sweep: str = arg(help="a sweep's folder, or a folder of several sweeps", metavar="DIR")
    baseline: str | None = arg(None, "the label of the group to compare the others with "
                               "(paired over seeds); null: the first group")
    target: str | None = arg(None, "METRIC:VALUE, e.g. metrics/fid:20: a table of the images "
                             "seen until each group first reached it")


def run_report(args: ReportArgs) -> int:
    """The command's body: write the report and print its tables."""
    sweep_dir = Path(args.sweep)
    try:
        markdown, plots = report(sweep_dir, args.baseline, args.target)
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
