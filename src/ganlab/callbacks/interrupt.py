"""SIGTERM and SIGINT: finish the training step, save ``last.ckpt``, exit non-zero.

A signal can arrive in the middle of a step (D updated, G not yet), so the handlers only
record it; the run stops at the next step boundary, where a checkpoint resumes exactly.
A second Ctrl+C stops at once (Lightning's KeyboardInterrupt path, exit code 1).

Lightning keeps its own signal handling: it installs its SIGTERM handler on top of ours
and calls ours too, and under SLURM it adds the SIGUSR1 requeue handler, which ganlab
leaves alone. Lightning then raises ``SIGTERMException`` at the end of the step; the
callback checks ``trainer.received_sigterm`` first, and saves in ``on_exception`` when the
signal came too late for that check.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ganlab.callbacks.checkpoint import LastCheckpoint
from ganlab.errors import GanlabError

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(GanlabError):
    """Training stopped on a signal; exits with the shell's code for it (128 + signum)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + int(signum)


class GracefulStop(L.Callback):
    """Stops training at the next step boundary after SIGTERM or SIGINT, saving last.ckpt.

    Use ``with callback.handling_signals(): trainer.fit(...)``; the callback must come
    after LastCheckpoint in the trainer's callbacks.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._message: str | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # Only record the signal: logging or printing here could re-enter a stream write.
        if signum == signal.SIGINT and self.signum is not None:
            raise KeyboardInterrupt  # a second Ctrl+C: stop now
        self.signum = self.signum or signum
        previous = self._previous.get(signum)
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, frame)  # a handler someone installed before us keeps working

    @contextmanager
    def handling_signals(self) -> Iterator[None]:
        """Installs the handlers around ``trainer.fit`` and turns a stop into Interrupted."""
        self.signum, self._message = None, None
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._handle)
        try:
            yield
        except SIGTERMException:
            raise Interrupted(self._message or "interrupted by SIGTERM", signal.SIGTERM) from None
        finally:
            for signum, handler in self._previous.items():
                if handler is not None:  # None: installed outside Python, cannot be restored
                    signal.signal(signum, handler)
            self._previous.clear()
        if self.signum is not None:  # arrived after the last step, e.g. during the final save
            name = signal.Signals(self.signum).name
            raise Interrupted(f"interrupted by {name} at the end of training", self.signum)

    def _signal(self, trainer: L.Trainer) -> int | None:
        if self.signum is not None:
            return self.signum
        return signal.SIGTERM if trainer.received_sigterm else None

    def _save(self, trainer: L.Trainer, pl_module: Any, signum: int) -> str:
        step, name = pl_module.g_steps, signal.Signals(signum).name
        saved = [cb for cb in trainer.callbacks if isinstance(cb, LastCheckpoint)]
        if not saved:
            return (
                f"interrupted by {name} at step {step}; no checkpoint was written "
                "(callbacks.last_checkpoint is off)"
            )
        for cb in saved:
            cb.save(trainer, step)
        path = saved[0].path
        run_dir = Path(trainer.default_root_dir).resolve()
        return (
            f"interrupted by {name} at step {step}; saved {path}; resume with "
            f"hydra.run.dir={run_dir} or ckpt_path={path}"
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        signum = self._signal(trainer)
        if signum is None:
            return
        self.signum = None  # acted on
        raise Interrupted(self._save(trainer, pl_module, signum), signum)

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        self.signum = None
        try:  # Lightning raised it at a step boundary, so the state is consistent
            self._message = self._save(trainer, pl_module, signal.SIGTERM)
        except Exception as err:  # report it, but let Lightning tear down
            log.error("could not save a checkpoint after SIGTERM: %s", err)
            self._message = f"interrupted by SIGTERM at step {pl_module.g_steps}; saving failed"
