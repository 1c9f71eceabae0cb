"""litdata, imported the way ganlab uses it: without its check for a newer release on PyPI
(a network request every time a data set is opened; ganlab never reaches the network), and
with a writer that knows it is the only one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

os.environ.setdefault("LITDATA_DISABLE_VERSION_CHECK", "1")  # read when litdata is imported

# litdata's own variables for "worker 0 of 1" (what litdata.optimize sets in its workers).
_ONE_WRITER = {"DATA_OPTIMIZER_GLOBAL_RANK": "0", "DATA_OPTIMIZER_NUM_WORKERS": "1",
               "DATA_OPTIMIZER_NUM_NODES": "1"}


@contextmanager
def single_writer() -> Iterator[None]:
    """litdata's BinaryWriter, made and merged inside this block, writes alone.

    Outside litdata.optimize it takes its rank and the number of writers to wait for from
    torch.distributed, so inside a DDP process (a data set prepared at a run's start) it would
    wait for the other ranks' index files forever; with these variables it is worker 0 of 1,
    as in litdata.optimize with one worker.
    """
    saved = {name: os.environ.get(name) for name in _ONE_WRITER}
    os.environ.update(_ONE_WRITER)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
