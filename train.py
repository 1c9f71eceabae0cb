"""Train a GAN: ``python train.py [group=option ...] [key=value ...]`` (see --help)."""

import sys

import hydra
from omegaconf import DictConfig

from ganlab.errors import GanlabError
from ganlab.train import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    except GanlabError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 2))  # 128 + signum after SIGTERM / SIGINT
    return metrics.get(cfg.get("optimized_metric") or "", None)


if __name__ == "__main__":
    main()
