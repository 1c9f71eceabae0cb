"""Evaluate a checkpoint's generator (ganlab.evaluation has the metrics and protocol):

    python -m ganlab.evaluate checkpoint=PATH [num_samples=N] [data_dir=DIR] [device=cpu]
        [feature_net=NAME] [weights_path=FILE] [trust=[MODULE,...]]

The checkpoint is data (ganlab.checkpoint): its generator and data module are built only
from ganlab's registry of classes with plain arguments; the reference data and the caches
(classifier, statistics) are under ``data_dir`` (default ./data), never a path the
checkpoint names.

Every result carries its protocol (``protocol/*`` keys): feature network and checksum,
numbers of real and generated samples, reference split, step, seed, EMA or not.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganlab import registry
from ganlab.cli import arg, name_list, run_command
from ganlab.errors import GanlabError


@dataclass
class EvaluateArgs:
    checkpoint: str = arg(help="the checkpoint (.ckpt) whose generator is evaluated",
                          metavar="PATH")
    num_samples: int | None = arg(
        None, "samples to generate (>= 2); null: the checkpoint's setting")
    data_dir: str = arg("data", "reference data and caches (classifier, statistics)")
    device: str = arg("cpu", "torch device to run the generator on, e.g. cuda")
    feature_net: str | None = arg(
        None, "classifier or inception; null: the checkpoint's setting")
    weights_path: str | None = arg(None, "weights file of the feature network (inception)")
    # Any: OmegaConf takes both trust=my_module (a string) and trust=[a,b] (a list) for it.
    trust: Any = arg(None, "your modules (m or [a,b]) whose classes may be loaded")


# Evaluation options a checkpoint may carry, and their types; paths (weights_path,
# paths.data_dir) are never taken from a checkpoint, only from the command line.
_STORED_EVALUATION = {"feature_net": str, "num_samples": int, "reference_split": str,
                      "kid_subset_size": int, "precision_recall_k": int}


def _stored_run(ckpt: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The checked data node, evaluation options and seed of a checkpoint's run."""
    from ganlab.checkpoint import stored_value

    config = stored_value(ckpt["ganlab"], "config", dict)
    data = stored_value(config, "data", dict)
    stored_eval = stored_value(config, "evaluation", (dict, type(None)), None) or {}
    evaluation = {"feature_net": "classifier"}
    for key, kind in _STORED_EVALUATION.items():
        if key in stored_eval:
            evaluation[key] = stored_value(stored_eval, key, kind)
    return data, evaluation, stored_value(config, "seed", int, 0)


def evaluate_checkpoint(args: EvaluateArgs) -> tuple[dict[str, Any], Path]:
    """The metrics of ``args.checkpoint``'s generator, also written beside it (the path)."""
    # Imported here, not above: torch and Lightning take seconds, --help should not wait.
    from ganlab.checkpoint import REFUSED_HINT, load_checkpoint, load_generator
    from ganlab.evaluation import build_evaluator

    registry.trust(name_list("trust", args.trust))
    ckpt_path = Path(args.checkpoint)
    stored = load_generator(ckpt_path)
    if stored.latent_dim is None:
        raise GanlabError(
            f"checkpoint={ckpt_path} holds a {stored.model} model, which translates "
            "images; the metrics here are for samples of noise (its run's metrics.json has "
            "the final cycle and identity losses)"
        )
    try:
        data, evaluation, seed = _stored_run(load_checkpoint(ckpt_path, mmap=True))
        if "root" in data:  # torchvision sets: read from (or downloaded into) data_dir
            data = {**data, "root": args.data_dir}
        datamodule = registry.build("data", data, "data")
    except registry.Refused as err:
        raise GanlabError(f"checkpoint={ckpt_path}: {err}; {REFUSED_HINT}") from None
    for key in ("num_samples", "feature_net", "weights_path"):
        if getattr(args, key) is not None:
            evaluation[key] = getattr(args, key)
    num = evaluation.get("num_samples", 2500)
    if not isinstance(num, int) or isinstance(num, bool) or num < 2:
        raise GanlabError(f"num_samples={num!r} must be an integer >= 2")
    generator = stored.net.to(args.device)
    datamodule.setup()
    evaluator = build_evaluator(evaluation, datamodule, args.data_dir, seed)
    if evaluator is None:
        raise GanlabError("no metric applies to this checkpoint's data; use feature_net=inception")
    metrics = evaluator.evaluate_generator(generator, stored.latent_dim, stored.g_steps,
                                           stored.ema)
    out = ckpt_path.with_suffix(".metrics.json")
    try:
        out.write_text(json.dumps(metrics, indent=2) + "\n")
    except OSError as err:
        raise GanlabError(f"cannot write {out}: {err.strerror}") from None
    return metrics, out


def evaluate(args: EvaluateArgs) -> int:
    """The command's body: evaluate, print the metrics and where they were written."""
    metrics, out = evaluate_checkpoint(args)
    for key, value in metrics.items():
        shown = f"{value:.6g}" if isinstance(value, float) and math.isfinite(value) else value
        print(f"{key:32s} {shown}")
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(
        EvaluateArgs,
        evaluate,
        argv,
        prog="python -m ganlab.evaluate",
        summary="Evaluate a checkpoint's generator; the metrics go to stdout and to\n"
        "CHECKPOINT.metrics.json beside it.",
    )


if __name__ == "__main__":
    sys.exit(main())
