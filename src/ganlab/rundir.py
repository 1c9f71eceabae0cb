"""The run directory: one process at a time, and files written whole or not at all.

``lock`` takes an OS file lock on ``<run dir>/.lock`` for the rest of the process's life. The
kernel releases it when the process ends, however it ends (``kill -9`` included), so a
crashed run never leaves a stale lock; the file stays behind with the last holder's PID.
The extra processes of one run (DDP ranks, which Lightning starts by re-running the
command) do not take it: their rank 0 holds it for the run.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ganlab.errors import GanlabError

LOCK_FILE = ".lock"
_held: dict[Path, int] = {}  # run directory -> file descriptor holding its lock
_RANK_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID")
_WHAT = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large",
}
DISK_ERRNOS = frozenset(_WHAT)


def disk_error(path: Path | str, err: OSError, kept: str = "") -> GanlabError:
    """One line for a file that cannot be written: ``cannot write PATH: <reason><kept>``."""
    reason = _WHAT.get(err.errno) or (err.strerror or str(err)).lower()
    return GanlabError(f"cannot write {path}: {reason}{kept}")


@contextmanager
def writing(path: Path | str) -> Iterator[Path]:
    """A temporary name beside ``path`` (same suffix) for the block to write, renamed to
    ``path`` after it: ``path`` is whole or untouched. An OSError of the block (a full disk,
    a read-only mount) becomes ``disk_error`` and leaves no temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise disk_error(path, err) from None


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename) to disk, where the file system allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. directories on some network file systems
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: Path | str, text: str) -> None:
    """``path`` holds ``text`` or what it held before: written beside it, then renamed."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise disk_error(path, err) from None


def check_run_dir(run_dir: Path) -> None:
    """GanlabError unless ``run_dir`` exists or can be made, and files can be made in it."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=run_dir).close()  # unnamed: leaves nothing behind
    except OSError as err:
        raise GanlabError(
            f"hydra.run.dir={run_dir}: the run directory cannot be written: {err.strerror or err}"
        ) from None


def is_extra_process() -> bool:
    """True in a DDP rank other than 0 (Lightning or SLURM set its rank variables)."""
    return any(os.environ.get(name, "0") not in ("", "0") for name in _RANK_VARIABLES)


def lock(run_dir: Path | str) -> None:
    """Hold ``run_dir``'s lock until this process ends; GanlabError naming the directory and
    the holder's PID when another process holds it. Idempotent within a process."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _held or is_extra_process():
        return
    path = run_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise disk_error(path, err) from None
    if not _try_lock(fd):
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise GanlabError(
            f"run directory {run_dir} is in use by another ganlab process (PID {holder}); "
            "wait for it to end or stop it, or choose another hydra.run.dir"
        )
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[run_dir] = fd


def unlock(run_dir: Path | str) -> None:
    """Release ``run_dir``'s lock if this process holds it."""
    fd = _held.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the lock


def _try_lock(fd: int) -> bool:
    if os.name == "nt":  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
