"""Regenerate the README gallery: a short run of each model on digits and ring8, each run's
final sample picture copied to docs/images/gallery/<model>_<data>.png.

    python scripts/gallery.py [steps=N] [out=docs/images/gallery] [runs=outputs/gallery] [data_dir=data]
                              [only=[dcgan_digits,mlp_ring8]]

Budgets are per entry (a CPU-sized run of a few minutes each); ``steps`` overrides them all.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ganlab.train import train

ROOT = Path(__file__).resolve().parents[1]
QUIET = [
    "trainer.enable_progress_bar=false",
    "callbacks.diagnostics.every_n_steps=0",
    "callbacks.sample_grid.every_n_steps=0",
]
NO_EVAL = ["callbacks.evaluation.every_n_steps=0"]  # models with sample metrics
ENTRIES = {
    "dcgan_digits": ["model=dcgan", "data=digits", "trainer.max_steps=2000", *NO_EVAL],
    "mlp_digits": ["model=mlp", "data=digits", "trainer.max_steps=2000", *NO_EVAL],
    "sngan_digits": [
        "model=sngan",
        "data=digits",
        "model.generator.width=32",
        "model.discriminator.width=32",
        "loss=hinge",
        "trainer.max_steps=1000",
        *NO_EVAL,
    ],
    "stylegan_digits": ["experiment=stylegan_digits", *NO_EVAL],
    "cyclegan_digits": ["experiment=cyclegan_digits"],
    "mlp_ring8": ["experiment=ring8", *NO_EVAL],
}


def main(argv: list[str]) -> None:
    args = OmegaConf.from_dotlist(argv)
    out = Path(str(args.get("out", ROOT / "docs" / "images" / "gallery")))
    runs = Path(str(args.get("runs", ROOT / "outputs" / "gallery")))
    out.mkdir(parents=True, exist_ok=True)
    steps = [f"trainer.max_steps={args.steps}"] if "steps" in args else []
    if "data_dir" in args:  # where the evaluation classifier is cached
        steps.append(f"paths.data_dir={args.data_dir}")
    only = list(args.get("only") or ENTRIES)
    unknown = sorted(set(only) - set(ENTRIES))
    if unknown:
        sys.exit(f"error: only={unknown} names no gallery entry; entries: {', '.join(ENTRIES)}")
    for name in only:
        overrides = ENTRIES[name]
        run = runs / name
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(
                "train", overrides=[*overrides, *QUIET, *steps, f"paths.output_dir={run}"]
            )
        metrics = train(cfg)
        shutil.copyfile(run / "samples" / "final.png", out / f"{name}.png")
        print(f"{name}: {metrics['steps']} steps, {metrics['wall_time_s']} s -> {out / name}.png")


if __name__ == "__main__":
    main(sys.argv[1:])
