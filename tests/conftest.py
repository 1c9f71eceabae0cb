"""Shared helpers: compose the real Hydra config, shrunk for tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import ganlab.schema  # noqa: F401 - the structured configs conf/train.yaml extends

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Small networks and quiet trainers: what the tests check does not depend on width.
TINY = {
    "mlp": [
        "model.generator.hidden=[32,32]",
        "model.discriminator.hidden=[32,32]",
        "model.latent_dim=8",
    ],
    "dcgan": [
        "model.generator.width=8",
        "model.discriminator.width=8",
        "model.latent_dim=8",
        "data.image_size=16",
        "evaluation.num_samples=400",
        "evaluation.kid_subset_size=100",
    ],
}
# One cache of classifiers and reference statistics for the whole session (see data_dir).
_DATA_DIR: list[Path] = []
QUIET = [
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def compose_config(output_dir: Path, overrides: list[str] = (), tiny: bool = True) -> DictConfig:
    """The composed train config with ``overrides``, writing into ``output_dir``."""
    overrides = list(overrides)
    model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), "dcgan")
    extra = TINY.get(model, []) if tiny else []
    if "evaluation=none" in overrides:  # no evaluation node to shrink
        extra = [o for o in extra if not o.startswith("evaluation.")]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(
            "train",
            overrides=[f"paths.output_dir={output_dir}", f"paths.data_dir={_DATA_DIR[0]}",
                       *QUIET, *extra, *overrides],
        )


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory) -> Path:
    """A session-wide ``paths.data_dir``: the evaluation classifier is trained once."""
    if not _DATA_DIR:
        _DATA_DIR.append(tmp_path_factory.mktemp("data"))
    return _DATA_DIR[0]


@pytest.fixture
def make_config(tmp_path):
    def make(overrides: list[str] = (), tiny: bool = True, name: str = "run") -> DictConfig:
        return compose_config(tmp_path / name, overrides, tiny)

    return make
