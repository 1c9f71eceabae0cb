"""Evaluate a checkpoint's or an export folder's generator, or any samples
(ganlab.evaluation has the metrics and protocol):

    python -m ganlab.evaluate checkpoint=PATH [num_samples=N] [data_dir=DIR] [device=cpu]
        [feature_net=NAME] [weights_path=FILE] [trust=[MODULE,...]]
    python -m ganlab.evaluate samples=FILE.npz|DIR data=NAME [evaluation=NAME]
        [overrides=[KEY=VALUE,...]] [num_samples=N] [feature_net=NAME] [weights_path=FILE]

Samples (ganlab.evaluate_samples) are scored against a data set of conf/data with the
evaluation settings of the composed training config. The checkpoint is data
(ganlab.checkpoint): its generator and data module are built only from ganlab's registry of
classes with plain arguments; the reference data and the caches (classifier, statistics) are
under ``data_dir`` (default ./data), never a path the checkpoint names.

Every result carries its protocol (``protocol/*`` keys): feature network and checksums,
numbers of real and generated samples, reference split, step, seed, EMA or not, TF32 off.
docs/EVALUATION.md describes the metrics and the protocols.
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
    checkpoint: str | None = arg(None, "the checkpoint (.ckpt) or export folder "
                                 "(ganlab.export) whose generator is evaluated (this or "
                                 "samples)")
    samples: str | None = arg(None, "an .npz of samples (ganlab.sample's format) or a folder "
                              "of images to evaluate (this or checkpoint)")
    data: str | None = arg(None, "with samples: the data config (conf/data) to score against")
    evaluation: str | None = arg(None, "with samples: the evaluation config (conf/evaluation); "
                                 "null: the training default")
    overrides: list[str] = arg([], "with samples: more overrides of the training config, e.g. "
                               "[data.path=DIR,evaluation.kid_subset_size=100]")
    config_dir: str | None = arg(None, "with samples: the Hydra config folder; null: the "
                                 "repository's conf")
    num_samples: int | None = arg(
        None, "samples to score (>= 2); null: the checkpoint's or the evaluation's setting")
    data_dir: str = arg("data", "reference data and caches (classifier, statistics)")
    device: str = arg("cpu", "torch device to run the generator on, e.g. cuda")
    feature_net: str | None = arg(
        None, "classifier, inception or dinov2; null: the checkpoint's or evaluation's setting")
    weights_path: str | None = arg(None, "weights file of the feature network (inception, "
                                   "dinov2)")
    # Any: OmegaConf takes both trust=my_module (a string) and trust=[a,b] (a list) for it.
    trust: Any = arg(None, "your modules (m or [a,b]) whose classes may be loaded")


def evaluate_checkpoint(args: EvaluateArgs) -> tuple[dict[str, Any], Path]:
    """The metrics of ``args.checkpoint``'s generator (a checkpoint file or an export
    folder), also written beside it (the path)."""
    # Imported here, not above: torch and Lightning take seconds, --help should not wait.
    from ganlab.evaluation import build_evaluator
    from ganlab.generator import load_generator
    from ganlab.stored import REFUSED_HINT

    registry.trust(name_list("trust", args.trust))
    ckpt_path = Path(args.checkpoint)
    stored = load_generator(ckpt_path)
    if stored.latent_dim is None:
        raise GanlabError(
            f"checkpoint={ckpt_path} holds a {stored.model} model, which translates "
            "images; the metrics here are for samples of noise (its run's metrics.json has "
            "the final cycle and identity losses)"
        )
    data, evaluation = stored.data, dict(stored.evaluation)
    try:
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
    evaluator = build_evaluator(evaluation, datamodule, args.data_dir, stored.seed)
    if evaluator is None:
        raise GanlabError("no metric applies to this checkpoint's data; use feature_net=inception")
    metrics = evaluator.evaluate_generator(generator, stored.latent_dim, stored.g_steps,
                                           stored.ema)
    out = ckpt_path / "metrics.json" if ckpt_path.is_dir() else ckpt_path.with_suffix(
        ".metrics.json")
    try:
        out.write_text(json.dumps(metrics, indent=2) + "\n")
    except OSError as err:
        raise GanlabError(f"cannot write {out}: {err.strerror}") from None
    return metrics, out


def _check_source(args: EvaluateArgs) -> None:
    """Exactly one of checkpoint= and samples=, and the keys that go with each."""
    if (args.checkpoint is None) == (args.samples is None):
        raise GanlabError("pass exactly one of checkpoint=PATH (a generator to sample) and "
                          "samples=PATH (an .npz or a folder of images)")
    if args.samples is not None and args.data is None:
        raise GanlabError("samples= needs data=NAME, the data set (conf/data) to score "
                          "against, e.g. data=digits")
    if args.checkpoint is not None:
        given = [k for k in ("data", "evaluation", "config_dir") if getattr(args, k) is not None]
        given += ["overrides"] if args.overrides else []
        if given:
            raise GanlabError(f"{given[0]}= is for samples=; a checkpoint is scored against its "
                              "own run's data set and evaluation settings")


def evaluate(args: EvaluateArgs) -> int:
    """The command's body: evaluate, print the metrics and where they were written."""
    from ganlab.evaluate_samples import evaluate_samples

    _check_source(args)
    if args.samples is not None:
        metrics, out = evaluate_samples(args)
        try:
            out.write_text(json.dumps(metrics, indent=2) + "\n")
        except OSError as err:
            raise GanlabError(f"cannot write {out}: {err.strerror}") from None
    else:
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
        summary="Evaluate a checkpoint's or an export folder's generator, or samples (an .npz or\n"
        "a folder of images) against a data set; the metrics go to stdout and to a\n"
        ".metrics.json beside the input (FOLDER/metrics.json for an export).",
    )


if __name__ == "__main__":
    sys.exit(main())
