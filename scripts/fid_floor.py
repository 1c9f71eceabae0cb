"""Classifier-FID floor of a labelled data set, and a checkpoint against it.

    python scripts/fid_floor.py checkpoint=PATH [data_dir=data] [seed=0]

Real held-out images (the data set's test split) scored against the training reference
give the floor a generator can reach at that sample count; the checkpoint's samples are
scored with the same protocol and the same number of samples (FID is biased by the sample
count, so only equal counts compare).
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from ganlab import registry
from ganlab.evaluation import Evaluator
from ganlab.generator import load_generator


def main(argv: list[str]) -> None:
    args = OmegaConf.from_dotlist(argv)
    stored = load_generator(str(args.checkpoint))
    data = registry.build("data", stored.data, "data")  # a registered class, plain arguments
    data.setup()
    held_out, _ = data.tensors("test")
    n = len(held_out)
    eval_cfg = OmegaConf.create({"feature_net": "classifier", "num_samples": n,
                                 "reference_split": "train", "kid_subset_size": min(100, n)})
    cache = Path(str(args.get("data_dir", "data")))
    evaluator = Evaluator(eval_cfg, data, cache_dir=cache, seed=int(args.get("seed", 0)))
    floor = evaluator(lambda k: held_out[:k], step=0)
    model = evaluator.evaluate_generator(stored.net, stored.latent_dim, stored.g_steps)
    keys = ["metrics/fid", "metrics/kid_mean", "metrics/precision", "metrics/recall",
            "metrics/is_mean", "metrics/classes_generated"]
    print(f"{'metric':24s} {'held-out real':>14s} {'checkpoint':>12s}   (n = {n} each)")
    for key in keys:
        print(f"{key:24s} {floor[key]:14.4f} {model[key]:12.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
