"""Checks before any work, and before Hydra writes anything to a run directory.

``Preflight`` is a Hydra callback (``hydra.callbacks.preflight`` in conf/hydra/default.yaml).
Its ``on_run_start`` runs before Hydra creates the run directory and writes
``.hydra/*.yaml`` and ``train.log`` into it, so a typo in a command that continues an
existing run (``hydra.run.dir=<run dir>``) leaves that run exactly as it was, and a typo in a
new command leaves no empty run directory behind. It builds the run's parts (ganlab.build:
each checks its own options, then that they fit together), checks that the run directory
can be written and that the checkpoint to resume from is readable and fits the model, then
takes the run directory's lock (ganlab.rundir), so a second process on the same directory
stops here. ``ganlab.train.fit`` does the same, for ``train(cfg)`` callers and multiruns.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict

import ganlab.schema  # noqa: F401 - registers the structured configs train.yaml extends
from ganlab import rundir
from ganlab.build import assemble
from ganlab.checkpoint import resume_checkpoint
from ganlab.errors import GanlabError


class Preflight(Callback):
    """Fails a single run with one ``error:`` line before Hydra touches its run directory."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            # ${now:...} is cached per process, so this is the directory Hydra will make;
            # paths.output_dir is Hydra's runtime value, which it has not set yet.
            run_dir = Path(str(config.hydra.run.dir))
            config = copy.deepcopy(config)
            with open_dict(config):
                config.paths.output_dir = str(run_dir)
            run = assemble(config)
            if config.get("ckpt_path") or (run_dir / "checkpoints" / "last.ckpt").is_file():
                resume_checkpoint(config.get("ckpt_path"), run_dir, run.module.state_dict())
            rundir.check_run_dir(run_dir)
            rundir.lock(run_dir)  # held for the process's life; fit() takes it in multiruns
        except GanlabError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
