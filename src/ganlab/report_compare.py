"""The tables of ``ganlab.report``: each group's final metrics with a bootstrap interval of the
mean over seeds and a "best" mark the intervals support, the paired differences to a baseline
group over the seeds they share, and the images seen when a target value was first reached.

The groups are ganlab.report's (``jobs``, each with ``metrics``, ``seed``, ``dir``,
``images_per_step``); the statistics are ganlab.stats'.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ganlab import stats
from ganlab.directions import metric_mode
from ganlab.errors import GanlabError

FINAL_KEYS = ("steps", "wall_time_s")


def _fmt(x: float | None) -> str:
    return "" if x is None or math.isnan(x) else f"{x:.4g}"


def _interval(ci: stats.Interval | None) -> str:
    return "" if ci is None else f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


def _mode(name: str) -> str | None:
    if not name.startswith("metrics/"):
        return None
    try:
        return metric_mode(name)
    except GanlabError:  # a metric without a better direction (kid_std, ...)
        return None


def metric_names(groups: Sequence[Any]) -> list[str]:
    names = {k for g in groups for j in g.done for k in j.metrics}
    return sorted(names, key=lambda k: (k in FINAL_KEYS, k))


def summary_rows(groups: Sequence[Any], labels: Sequence[str]) -> list[dict[str, Any]]:
    """Per group: n, failed, and per metric mean, sample std, 95% interval, best."""
    names = metric_names(groups)
    rows = []
    for label, group in zip(labels, groups, strict=True):
        row: dict[str, Any] = {"group": label, "n": len(group.done), "failed": len(group.failed)}
        for name in names:
            values = [j.metrics[name] for j in group.done if name in j.metrics]
            row[f"{name}_mean"] = statistics.fmean(values) if values else None
            row[f"{name}_std"] = statistics.stdev(values) if len(values) > 1 else None
            ci = stats.bootstrap_ci(values)
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = ci if ci else (None, None)
        rows.append(row)
    for name in names:
        mode = _mode(name)
        best = None if mode is None else stats.best_index(
            [r[f"{name}_mean"] for r in rows],
            [None if r[f"{name}_ci_low"] is None else (r[f"{name}_ci_low"], r[f"{name}_ci_high"])
             for r in rows], mode)
        for i, row in enumerate(rows):
            row[f"{name}_best"] = i == best
    return rows


def write_tables(groups: Sequence[Any], labels: Sequence[str], sweep_dir: Path) -> str:
    """report.csv and the Markdown of the summary table (and the failed jobs)."""
    names, rows = metric_names(groups), summary_rows(groups, labels)
    with open(sweep_dir / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    lines = [
        f"# Sweep report: {sweep_dir}",
        "",
        "Mean ± sample std over seeds, [95% bootstrap interval of the mean] (seeds resampled, "
        "fixed seed); n: seeds that finished. **best**: the group whose interval lies wholly "
        "on the better side of every other group's.",
        "",
        "| group | n | failed | " + " | ".join(names) + " |",
        "| --- | --- | --- |" + " --- |" * len(names),
    ]
    for row in rows:
        cells = []
        for n in names:
            cell = _fmt(row[f"{n}_mean"])
            cell += f" ± {_fmt(row[f'{n}_std'])}" if row[f"{n}_std"] is not None else ""
            if row[f"{n}_ci_low"] is not None:
                cell += f" {_interval((row[f'{n}_ci_low'], row[f'{n}_ci_high']))}"
            cells.append(cell + (" **best**" if row[f"{n}_best"] else ""))
        lines.append(f"| {row['group']} | {row['n']} | {row['failed']} | " + " | ".join(cells)
                     + " |")
    failed = [j for g in groups for j in g.failed]
    if failed:
        lines += ["", f"## Failed jobs ({len(failed)})", ""]
        lines += [f"- job {j.dir.name} ({' '.join(j.overrides)}): {j.error}" for j in failed]
    return "\n".join(lines) + "\n"


def _by_seed(group: Any, name: str) -> dict[int, float]:
    return {j.seed: j.metrics[name] for j in group.done
            if j.seed is not None and name in j.metrics}


def differences(groups: Sequence[Any], labels: Sequence[str], baseline: int) -> str:
    """Markdown: each group's paired difference to group ``baseline`` per metric, over the
    seeds both finished; groups that share no seed with it are left out."""
    names = [n for n in metric_names(groups) if n.startswith("metrics/")]
    base = groups[baseline]
    lines = [f"## Paired differences to the baseline: {labels[baseline]}", "",
             "Mean over the seeds both groups finished of (group - baseline), [95% bootstrap "
             "interval]; n: shared seeds. An interval that holds 0 shows no difference.", "",
             "| group | n | " + " | ".join(names) + " |", "| --- | --- |" + " --- |" * len(names)]
    rows = 0
    for i, (label, group) in enumerate(zip(labels, groups, strict=True)):
        if i == baseline:
            continue
        cells, shared = [], 0
        for name in names:
            diff = stats.paired_difference(_by_seed(group, name), _by_seed(base, name))
            shared = max(shared, diff[2] if diff else 0)
            cells.append("" if diff is None else f"{_fmt(diff[0])} {_interval(diff[1])}".strip())
        if shared:
            lines.append(f"| {label} | {shared} | " + " | ".join(cells) + " |")
            rows += 1
    return "\n".join(lines) + "\n" if rows else ""


def parse_target(target: str) -> tuple[str, float, str]:
    """``metrics/fid:20`` -> (name, value, 'min' or 'max'); ValueError in one line."""
    name, colon, value = target.rpartition(":")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not colon or not name or not math.isfinite(number):
        raise ValueError(f"target={target} is not allowed: it must be METRIC:VALUE, e.g. "
                         "metrics/fid:20")
    name = name if name.startswith("metrics/") else f"metrics/{name}"
    try:
        return name, number, metric_mode(name)
    except GanlabError as err:
        raise ValueError(f"target={target} is not allowed: {err}") from None


def time_to_target(groups: Sequence[Any], labels: Sequence[str],
                   scalars: Sequence[Sequence[Mapping[str, Mapping[int, float]]]],
                   target: str, sweep_dir: Path) -> str:
    """Markdown (and report_target.csv): per group the images seen when ``target`` was first
    reached in the evaluations logged during training (TensorBoard steps are generator steps;
    images seen = step x the job's images per step, from its metrics.json)."""
    name, value, mode = parse_target(target)
    sign = "<=" if mode == "min" else ">="
    lines = [f"## Images seen until {name} {sign} {value:g}", "",
             "The first logged evaluation that reached it; mean [95% bootstrap interval] over "
             "the seeds that reached it.", "",
             "| group | reached | images seen | per seed |", "| --- | --- | --- | --- |"]
    rows = []
    for label, group, per_job in zip(labels, groups, scalars, strict=True):
        seen: dict[str, float | None] = {}
        for job, tags in zip(group.done, per_job, strict=True):
            step = stats.first_reached(tags.get(name, {}), value, mode)
            per_step = job.images_per_step
            seen[str(job.seed if job.seed is not None else job.dir.name)] = (
                None if step is None or per_step is None else step * per_step)
        reached = [v for v in seen.values() if v is not None]
        mean = statistics.fmean(reached) if reached else None
        ci = stats.bootstrap_ci(reached)
        each = "; ".join(f"seed {s}: {'not reached' if v is None else f'{v:,.0f}'}"
                         for s, v in seen.items())
        lines.append(f"| {label} | {len(reached)}/{len(seen)} | "
                     f"{_fmt(mean)} {_interval(ci)}".rstrip() + f" | {each} |")
        rows.append({"group": label, "reached": len(reached), "n": len(seen),
                     "images_seen_mean": mean, "ci_low": ci[0] if ci else None,
                     "ci_high": ci[1] if ci else None})
    with open(sweep_dir / "report_target.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return "\n".join(lines) + "\n"
