"""Every command takes its arguments one way (ganlab.cli): ``key=value``, ``--help``, and bad
input as one line ``error: ...`` on stderr with exit status 2.

The commands run as real processes, ``python -m ganlab.X`` and the console scripts, all
started at once by one fixture: each pays its own imports (torch: seconds on 2 cores).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ganlab.classifier import ClassifierArgs
from ganlab.cli import name_list, parse
from ganlab.errors import GanlabError
from ganlab.evaluate import EvaluateArgs
from ganlab.report import ReportArgs
from ganlab.sample import SampleArgs

# command -> (its arguments' dataclass, a value of the wrong type, the key it is for)
COMMANDS = {
    "sample": (SampleArgs, "num_samples=abc", "num_samples"),
    "evaluate": (EvaluateArgs, "num_samples=1.5", "num_samples"),
    "report": (ReportArgs, "sweep=[a,b]", "sweep"),
    "classifier": (ClassifierArgs, "overrides=data.image_size=28", "overrides"),
}
BAD = {"unknown-key": ["colour=red"], "not-key-value": ["colour"]}
SCRIPTS = ["ganlab-sample", "ganlab-report"]


def console_script(name: str) -> str:
    """The installed script, this Python's own first (``pip install -e .`` makes it)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=path)
    assert found, f"no {name} on PATH; run pip install -e . --no-deps"
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[tuple[str, str], subprocess.CompletedProcess]:
    commands = {}
    for name, (_, wrong_type, _) in COMMANDS.items():
        module = [sys.executable, "-m", f"ganlab.{name}"]
        commands[name, "help"] = [*module, "--help"]
        commands[name, "wrong-type"] = [*module, wrong_type]
        for case, args in BAD.items():
            commands[name, case] = [*module, *args]
    for script in SCRIPTS:
        commands[script, "help"] = [console_script(script), "--help"]
    commands["ganlab-report", "unknown-key"] = [console_script("ganlab-report"), "colour=red"]
    cwd = tmp_path_factory.mktemp("commands")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        done = {
            key: pool.submit(subprocess.run, command, cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=120)
            for key, command in commands.items()
        }
    return {key: future.result() for key, future in done.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", [*COMMANDS, *SCRIPTS])
def test_help_lists_every_key_with_its_help_text(runs, name):
    proc = runs[name, "help"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    command = name.removeprefix("ganlab-")
    assert proc.stdout.startswith(f"usage: python -m ganlab.{command} ")
    lines = proc.stdout.splitlines()
    for field in dataclasses.fields(COMMANDS[command][0]):
        assert field.metadata["help"], f"{command}: key {field.name} has no help text"
        assert any(line.split()[:1] == [field.name] and line.endswith(field.metadata["help"])
                   for line in lines), (field.name, proc.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("case", [*BAD, "wrong-type"])
@pytest.mark.parametrize("name", COMMANDS)
def test_bad_argument_is_one_error_line_and_exit_status_2(runs, name, case):
    proc = runs[name, case]
    key = "colour" if case in BAD else COMMANDS[name][2]
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: ") and key in line, line
    assert proc.stdout == ""

@pytest.mark.slow
def test_console_script_exits_with_the_status_main_returns(runs):
    proc = runs["ganlab-report", "unknown-key"]
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown key 'colour'; keys: sweep")


def test_messages_name_the_key_and_what_it_takes():
    def error(args_class: type, argv: list[str]) -> str:
        with pytest.raises(GanlabError) as err:
            parse(args_class, argv)
        return str(err.value)

    keys = ", ".join(f.name for f in dataclasses.fields(SampleArgs))
    assert error(SampleArgs, ["checkpoint=x", "num_samples=abc"]) == (
        "num_samples='abc' is not allowed: it must be an integer")
    assert error(SampleArgs, ["checkpoint"]) == (
        f"argument 'checkpoint' is not key=value; keys: {keys}")
    assert error(SampleArgs, ["colour=red"]) == f"unknown key 'colour'; keys: {keys}"
    assert error(SampleArgs, ["num_samples=3"]) == "checkpoint is required: pass checkpoint=PATH"
    assert error(SampleArgs, ["checkpoint=x", "labels=[1,2"]) == (
        "labels='[1,2' is not allowed: it must be a list of integers, like [1,2]")
    assert error(ClassifierArgs, ["data=digits", "overrides=x"]) == (
        "overrides='x' is not allowed: it must be a list of strings, like [a,b]")


def test_values_are_typed_and_trust_takes_a_name_or_a_list():
    args = parse(SampleArgs, ["checkpoint=a.ckpt", "labels=[3,3,7]", "truncation=0.5"])
    assert args.labels == [3, 3, 7] and args.truncation == 0.5 and args.num_samples == 64
    one = parse(EvaluateArgs, ["checkpoint=a.ckpt", "trust=my_gans.nets"]).trust
    two = parse(EvaluateArgs, ["checkpoint=a.ckpt", "trust=[a,b]"]).trust
    assert name_list("trust", one) == ["my_gans.nets"] and name_list("trust", two) == ["a", "b"]
    assert name_list("trust", None) == []
    with pytest.raises(GanlabError, match=r"^trust=5 is not allowed: it must be a name"):
        name_list("trust", 5)
    assert parse(ClassifierArgs, ["data=digits"]).overrides == []
