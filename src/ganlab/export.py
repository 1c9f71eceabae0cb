"""Export a trained generator to a self-describing folder:

    python -m ganlab.export checkpoint=PATH output=DIR [ema=true] [formats=[torchscript,onnx]]

The folder holds ``model.safetensors`` (the generator's weights; the EMA weights by default
when the run had them), ``config.json`` (the registered network class and its plain
arguments, the latent size, classes and their names, the data space, the default
truncation, the weights' sha256), ``README.md`` (a model card with the Hugging Face Hub's
YAML metadata: the run's overrides, steps, images seen, final metrics and their protocol)
and ``samples.png``; with ``formats``, ``model.ts`` (TorchScript) and ``model.onnx``
(ganlab.portable). It is written beside ``output`` under a temporary name and renamed, so a
failed export leaves nothing behind and an existing folder is replaced only with
``overwrite=true``. ``from ganlab import Generator; Generator.load(DIR)`` reads it back, as
do ``python -m ganlab.sample`` and ``ganlab.evaluate``; ganlab never uploads anything.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganlab import registry
from ganlab.cli import arg, name_list, run_command
from ganlab.errors import GanlabError


@dataclass
class ExportArgs:
    checkpoint: str = arg(help="the checkpoint (.ckpt) to export", metavar="PATH")
    output: str = arg(help="the folder to write (must not exist unless overwrite=true)",
                      metavar="DIR")
    ema: bool = arg(True, "the EMA generator's weights when the run had an EMA")
    formats: list[str] = arg([], "graphs beside the weights: torchscript, onnx")
    overwrite: bool = arg(False, "replace an existing output folder")
    num_samples: int = arg(64, "samples in samples.png")
    trust: Any = arg(None, "your modules (m or [a,b]) whose network classes may be loaded")


def _check_output(args: ExportArgs) -> Path:
    from ganlab.portable import FORMATS

    output = Path(args.output).expanduser()
    unknown = [f for f in args.formats if f not in (*FORMATS, "safetensors")]
    if unknown:
        raise GanlabError(f"formats={args.formats} is not allowed: {unknown[0]} is not one of "
                          f"safetensors, {', '.join(FORMATS)}")
    if output.exists() and not args.overwrite:
        raise GanlabError(f"output={output} exists; choose another folder or pass "
                          "overwrite=true to replace it")
    if not output.parent.is_dir():
        raise GanlabError(f"output={output}: folder {output.parent} does not exist")
    if args.num_samples < 1:
        raise GanlabError(f"num_samples={args.num_samples} is not allowed: it must be >= 1")
    return output


def _run_files(checkpoint: Path) -> tuple[list[str], dict[str, Any]]:
    """The overrides and the final metrics of the run a checkpoint belongs to, read as plain
    data from its run directory (``<run>/checkpoints/last.ckpt``), where they are there."""
    from ganlab.sweep import job_overrides

    run = checkpoint.resolve().parent.parent
    try:
        overrides = job_overrides(run)
    except ValueError:
        overrides = []
    try:
        metrics = json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        metrics = {}
    return overrides, metrics if isinstance(metrics, dict) else {}


def _class_names(data: dict[str, Any]) -> list[str] | None:
    try:
        datamodule = registry.build("data", data, "data")
    except GanlabError:
        return None
    names = getattr(datamodule, "class_names", None)
    return [str(n) for n in names] if names else None


def export_config(stored: Any, node: dict[str, Any], sha256: str) -> dict[str, Any]:
    """config.json: everything needed to rebuild and use the generator, as plain data."""
    import torch

    net = stored.net
    shape = list(stored.data.get("shape", []))
    samples = ({"kind": "points", "shape": shape, "scale": stored.scale} if len(shape) == 1
               else {"kind": "images", "shape": shape, "value_range": [-1, 1]})
    config = {
        "format": "ganlab-generator", "format_version": 1,
        "class": f"{type(net).__module__}.{type(net).__qualname__}",
        "arguments": {k: v for k, v in node.items() if k != "_target_"},
        "model": stored.model, "latent_dim": stored.latent_dim,
        "num_classes": stored.num_classes, "class_names": _class_names(stored.data),
        "samples": samples, "truncation": stored.truncation,
        "ema": stored.ema, "steps": stored.g_steps, "images_seen": stored.images_seen,
        "data": stored.data, "evaluation": stored.evaluation, "seed": stored.seed,
        "weights_sha256": sha256,
        "exported_with": {"ganlab": __import__("ganlab").__version__, "torch": torch.__version__},
    }
    if hasattr(net, "w_avg"):  # the centre of the truncation trick (also in the weights)
        config["w_avg"] = [round(float(v), 8) for v in net.w_avg]
    return config


def model_card(config: dict[str, Any], checkpoint: Path, overrides: list[str],
               metrics: dict[str, Any], pictures: bool) -> str:
    kind = config["samples"]["kind"]
    task = "unconditional-image-generation" if kind == "images" else "other"
    lines = ["---", "library_name: ganlab", f"tags: [gan, ganlab, {config['model']}]",
             f"pipeline_tag: {task}", "---", "",
             f"# {config['model']} generator, trained with ganlab", "",
             f"Exported from `{checkpoint.name}` of a run with the overrides "
             f"`{' '.join(overrides) or '(none)'}`: {config['steps']} generator steps, "
             f"{config['images_seen']} images seen, "
             f"{'EMA' if config['ema'] else 'training'} weights.", "",
             "```python", "from ganlab import Generator", "",
             'g = Generator.load("path/to/this/folder")',
             "samples = g.sample(16, seed=0)  # " + (
                 "(16, C, H, W) in [-1, 1]" if kind == "images" else "(16, 2) points"),
             "```", ""]
    final = {k: v for k, v in metrics.items() if k.startswith(("metrics/", "protocol/"))}
    if final:
        lines += ["## Final metrics of the run", "", "| key | value |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in final.items()]
        lines.append("")
    if pictures:
        lines += ["## Samples", "", "![samples](samples.png)", ""]
    return "\n".join(lines)


def export(args: ExportArgs) -> int:
    output = _check_output(args)
    registry.trust(name_list("trust", args.trust))
    from ganlab.checkpoint import generator_from_checkpoint, load_checkpoint, stored_value

    checkpoint = Path(args.checkpoint).expanduser()
    stored = generator_from_checkpoint(checkpoint, ema=args.ema)
    node = stored_value(load_checkpoint(checkpoint, mmap=True)["ganlab"],
                        "config.model.generator", dict)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        _write(stored, node, tmp, args, checkpoint)
        if output.exists():  # overwrite=true: the old folder goes only once the new is whole
            old = output.with_name(f".{output.name}.old-{os.getpid()}")
            os.replace(output, old)
            os.replace(tmp, output)
            shutil.rmtree(old)
        else:
            os.replace(tmp, output)
    except OSError as err:
        raise GanlabError(f"output={output}: cannot write: {err.strerror or err}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"exported {stored.model} ({'EMA' if stored.ema else 'training'} weights) to {output}:"
          f" {', '.join(sorted(p.name for p in output.iterdir()))}")
    return 0


def _write(stored: Any, node: dict, folder: Path, args: ExportArgs, checkpoint: Path) -> None:
    from safetensors.torch import save_file

    from ganlab.generator import CONFIG, WEIGHTS, Generator, sha256_file

    folder.mkdir()
    state = {k: v.detach().contiguous() for k, v in stored.net.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    config = export_config(stored, node, sha256_file(folder / WEIGHTS))
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    pictures = stored.latent_dim is not None
    if pictures:
        Generator(stored).save_grid(folder / "samples.png", n=args.num_samples)
    overrides, metrics = _run_files(checkpoint)
    (folder / "README.md").write_text(model_card(config, checkpoint, overrides, metrics,
                                                 pictures))
    for fmt in dict.fromkeys(f for f in args.formats if f != "safetensors"):
        write_graph(stored, fmt, folder)


def write_graph(stored: Any, fmt: str, folder: Path) -> Path:
    """``model.ts`` or ``model.onnx`` of ``stored``'s generator in ``folder``."""
    from ganlab.portable import (
        FORMATS,
        PortableGenerator,
        example_inputs,
        write_onnx,
        write_torchscript,
    )

    portable = PortableGenerator(stored.net, stored.scale)
    inputs = example_inputs(portable, stored.latent_dim, list(stored.data.get("shape", [])),
                            psi=stored.truncation or 1.0)
    path = folder / FORMATS[fmt]
    quiet = io.StringIO()  # the ONNX exporter's progress lines; a failure is one error line
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        (write_onnx if fmt == "onnx" else write_torchscript)(portable, inputs, path)
    return path


def main(argv: list[str] | None = None) -> int:
    return run_command(ExportArgs, export, argv, prog="python -m ganlab.export",
                       summary="Export a checkpoint's generator to a folder: weights "
                       "(safetensors), config.json, a model card, samples, and\noptionally "
                       "TorchScript and ONNX graphs.")


if __name__ == "__main__":
    sys.exit(main())
