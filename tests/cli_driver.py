"""Run many ganlab commands as forked children of one process.

    python tests/cli_driver.py CASES.json RESULTS.json

Each case is ``{"id", "command": "train" | "sample" | "evaluate", "args": [...], "cwd"}``.
Every command runs in its own process, with its real argv, exit code and stderr, exactly as
``python train.py ARGS`` or ``python -m ganlab.sample ARGS`` would; only the imports
(about 5 s on 2 cores) are paid once, in this parent, which computes nothing itself, so the
children can fork safely. The tests directory is on sys.path (it is this script's
directory), so a config may point a ``_target_`` at a class in a test module.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(case: dict, out: Path, err: Path) -> None:
    """In the child: redirect stdout/stderr to files, run the command, exit with its code."""
    code = 1
    try:
        os.chdir(case["cwd"])
        for fd, path in ((1, out), (2, err)):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        if case["command"] == "train":
            sys.argv = [str(ROOT / "train.py"), *case["args"]]
            runpy.run_path(sys.argv[0], run_name="__main__")
        else:
            module = __import__(f"ganlab.{case['command']}", fromlist=["main"])
            sys.argv = [module.__file__, *case["args"]]
            sys.exit(module.main())  # what `python -m ganlab.X` runs under __main__
        code = 0
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            code = exit_.code or 0
        else:
            print(exit_.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    logs = Path(sys.argv[2]).with_suffix(".logs")
    logs.mkdir(exist_ok=True)
    import ganlab.evaluate  # noqa: F401 - the imports every child shares
    import ganlab.sample  # noqa: F401
    import ganlab.train  # noqa: F401

    results = {}
    for case in cases:
        out, err = logs / f"{case['id']}.out", logs / f"{case['id']}.err"
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _run(case, out, err)
        _, status = os.waitpid(pid, 0)
        results[case["id"]] = {
            "rc": os.waitstatus_to_exitcode(status),
            "stdout": out.read_text(errors="replace"),
            "stderr": err.read_text(errors="replace"),
        }
    Path(sys.argv[2]).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
