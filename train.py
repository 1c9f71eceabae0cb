"""Train a GAN: ``python train.py [group=option ...] [key=value ...]`` (see --help)."""

import sys

import hydra
from omegaconf import DictConfig

from ganlab.errors import GanlabError
from ganlab.sweep import is_multirun, record_failure
from ganlab.train import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    except Exception as err:
        exit_code = getattr(err, "exit_code", 2)  # 128 + signum after SIGTERM / SIGINT
        if is_multirun() and exit_code == 2:
            return record_failure(err)  # into the job's error.txt; the other jobs still run
        if not isinstance(err, GanlabError):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(exit_code)
    return metrics.get(cfg.get("optimized_metric") or "", None)


if __name__ == "__main__":
    main()
