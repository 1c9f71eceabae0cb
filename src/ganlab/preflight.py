"""Checks before any work, and before Hydra writes anything to a run directory.

``Preflight`` is a Hydra callback (``hydra.callbacks.preflight`` in conf/hydra/default.yaml).
Its ``on_run_start`` runs before Hydra creates the run directory and writes
``.hydra/*.yaml`` and ``train.log`` into it, so a typo in a command that continues an
existing run (``hydra.run.dir=<run dir>``) leaves that run exactly as it was, and a typo in a
new command leaves no empty run directory behind. It checks the config, that the run
directory can be written, and that the checkpoint to resume from is readable and fits the
model, then takes the run directory's lock (ganlab.rundir), so a second process on the
same directory stops here. ``ganlab.train.fit`` repeats the config and checkpoint checks
and takes the lock, for ``train(cfg)`` callers and for multirun jobs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from torch import Tensor

from ganlab import rundir
from ganlab.checkpoint import resume_checkpoint
from ganlab.config import validate
from ganlab.errors import GanlabError


def _networks(cfg: DictConfig) -> dict[str, Tensor]:
    from ganlab.train import instantiate_node

    state: dict[str, Tensor] = {}
    for net in ("generator", "discriminator"):
        module = instantiate_node(cfg.model[net], f"model.{net}")
        state |= {f"{net}.{k}": v for k, v in module.state_dict().items()}
    return state


class Preflight(Callback):
    """Fails a single run with one ``error:`` line before Hydra touches its run directory."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            validate(config)
            run_dir = Path(str(config.hydra.run.dir))
            if config.get("ckpt_path") or (run_dir / "checkpoints" / "last.ckpt").is_file():
                resume_checkpoint(config.get("ckpt_path"), run_dir, _networks(config),
                                  partial=True)
            rundir.check_run_dir(run_dir)
            rundir.lock(run_dir)  # held for the process's life; fit() takes it in multiruns
        except GanlabError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
