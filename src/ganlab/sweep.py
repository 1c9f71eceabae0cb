"""Multirun jobs that fail without stopping the sweep.

In a multirun (``python train.py -m ...``) a job that raises has its error written to
``error.txt`` in its own directory (``record_failure``) and the sweep goes on to the next
job; ``SweepFailures`` (a Hydra callback, conf/hydra/default.yaml) then prints one line per
failed job once all have run and exits with status 1. A single run keeps its one-line
``error:`` and exit code (train.py).
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from ganlab.errors import GanlabError

log = logging.getLogger(__name__)

ERROR_FILE = "error.txt"


def is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def record_failure(err: BaseException) -> float:
    """Write ``err`` to the job's error.txt (its message; a traceback unless it is a
    GanlabError) and return NaN, which sweepers such as Optuna record as a failed trial."""
    message = " ".join(str(err).split()) or type(err).__name__
    if not isinstance(err, GanlabError):
        message = f"{type(err).__name__}: {message}"
    text = message + "\n"
    if not isinstance(err, GanlabError):
        text += "\n" + "".join(traceback.format_exception(err))
    job_dir = Path(HydraConfig.get().runtime.output_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / ERROR_FILE).write_text(text)
    log.error("job failed: %s (written to %s)", message, job_dir / ERROR_FILE)
    return float("nan")


def failed_jobs(sweep_dir: Path) -> list[tuple[Path, str]]:
    """(job directory, first line of its error.txt) for each failed job, in job order."""
    found = [(p.parent, p.read_text().splitlines()[0]) for p in sweep_dir.glob(f"*/{ERROR_FILE}")]
    return sorted(found, key=lambda item: (len(item[0].name), item[0].name))


def job_overrides(job_dir: Path) -> list[str]:
    """A job's overrides as Hydra wrote them, read as plain YAML data (a file from a run
    directory is data: nothing in it is resolved or called); [] when there is none."""
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    try:
        overrides = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not YAML ({' '.join(str(err).split())[:80]})") from None
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ValueError(f"{path} is not a list of overrides; fix the file or move that job "
                         "out of the folder")
    return overrides


class SweepFailures(Callback):
    """Clears a stale error.txt when a job starts; after the sweep, one line per failed job."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        (Path(config.hydra.runtime.output_dir) / ERROR_FILE).unlink(missing_ok=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        failed = failed_jobs(sweep_dir)
        if not failed:
            return
        for job_dir, message in failed:
            overrides = " ".join(job_overrides(job_dir))
            print(f"error: job {job_dir.name} ({overrides}) failed: {message}", file=sys.stderr)
        print(
            f"error: {len(failed)} job(s) failed; see error.txt in their directories under "
            f"{sweep_dir}",
            file=sys.stderr,
        )
        sys.exit(1)
