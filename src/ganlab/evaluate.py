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
import logging
import math
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ganlab import registry
from ganlab.checkpoint import REFUSED_HINT, load_checkpoint, load_generator, stored_value
from ganlab.errors import GanlabError
from ganlab.evaluation import build_evaluator


def _parse(argv: list[str]) -> DictConfig:
    allowed = {"checkpoint", "num_samples", "data_dir", "device", "feature_net", "weights_path",
               "trust"}
    bad = [a for a in argv if "=" not in a or a.split("=", 1)[0] not in allowed]
    if bad:
        raise GanlabError(f"argument {bad[0]!r} is not one of {', '.join(sorted(allowed))} "
                          "as key=value")
    args = OmegaConf.from_dotlist(argv)
    if "checkpoint" not in args:
        raise GanlabError("checkpoint=PATH is required")
    return args


# Evaluation options a checkpoint may carry, and their types; paths (weights_path,
# paths.data_dir) are never taken from a checkpoint, only from the command line.
_STORED_EVALUATION = {"feature_net": str, "num_samples": int, "reference_split": str,
                      "kid_subset_size": int, "precision_recall_k": int}


def _stored_run(ckpt: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The checked data node, evaluation options and seed of a checkpoint's run."""
    config = stored_value(ckpt["ganlab"], "config", dict)
    data = stored_value(config, "data", dict)
    stored_eval = stored_value(config, "evaluation", (dict, type(None)), None) or {}
    evaluation = {"feature_net": "classifier"}
    for key, kind in _STORED_EVALUATION.items():
        if key in stored_eval:
            evaluation[key] = stored_value(stored_eval, key, kind)
    return data, evaluation, stored_value(config, "seed", int, 0)


def evaluate_checkpoint(argv: list[str]) -> tuple[dict[str, Any], Path]:
    args = _parse(argv)
    registry.trust(args.get("trust"))
    ckpt_path = Path(str(args.checkpoint))
    stored = load_generator(ckpt_path)
    if stored.latent_dim is None:
        raise GanlabError(
            f"checkpoint={ckpt_path} holds a {stored.model} model, which translates "
            "images; the metrics here are for samples of noise (its run's metrics.json has "
            "the final cycle and identity losses)"
        )
    try:
        data, evaluation, seed = _stored_run(load_checkpoint(ckpt_path, mmap=True))
        data_dir = str(args.get("data_dir", "data"))
        if "root" in data:  # torchvision sets: read from (or downloaded into) data_dir
            data = {**data, "root": data_dir}
        datamodule = registry.build("data", data, "data")
    except registry.Refused as err:
        raise GanlabError(f"checkpoint={ckpt_path}: {err}; {REFUSED_HINT}") from None
    for key in ("num_samples", "feature_net", "weights_path"):
        if key in args:
            evaluation[key] = args[key]
    num = evaluation.get("num_samples", 2500)
    if not isinstance(num, int) or isinstance(num, bool) or num < 2:
        raise GanlabError(f"num_samples={num!r} must be an integer >= 2")
    cfg = OmegaConf.create({"evaluation": evaluation, "seed": seed,
                            "paths": {"data_dir": data_dir}})
    generator = stored.net.to(str(args.get("device", "cpu")))
    datamodule.setup()
    evaluator = build_evaluator(cfg, datamodule)
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


def main(argv: list[str] | None = None) -> int:
    # Progress to stdout, so that stderr holds nothing but a one-line error; force: a fresh
    # handler on the current stream at every call.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    try:
        metrics, out = evaluate_checkpoint(sys.argv[1:] if argv is None else argv)
    except GanlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for key, value in metrics.items():
        shown = f"{value:.6g}" if isinstance(value, float) and math.isfinite(value) else value
        print(f"{key:32s} {shown}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
