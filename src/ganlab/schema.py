"""Structured configs (Hydra's ConfigStore): the types of the run's top-level options and the
parts every model node is assembled from, so a value of the wrong type fails when Hydra
composes the config. Ranges are checked by the component that owns each option.

- ``train_schema``: the top-level keys of conf/train.yaml (seed, n_critic, pack, ...);
- ``model/schema/gan`` and ``model/schema/cyclegan``: what a model YAML extends
  (``defaults: [schema/gan@_here_, _self_]``): the module class and its parts, each taken
  from its own group or top-level key (``loss: ${loss}``, ``ema: ${ema}``, ...), so a model
  file only says what is its own (name, networks, latent size).
"""

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class EMANode:
    _target_: str = "ganlab.ema.EMA"
    # Half-life of the G EMA in thousands of images (StyleGAN uses 10); 0: no EMA. By default
    # the model's recommendation. A number, or a schedule of the images seen (a
    # ganlab.schedules node, hence Any; ganlab.ema.EMA checks the value).
    half_life_kimg: Any = "${oc.select:model.recommended.ema_half_life_kimg,0.0}"


@dataclass
class TrainSchema:
    # The groups' nodes (each option's YAML, or a component's own schema, says what is in them).
    data: Any = None
    optimizer: Any = None
    loss: Any = None
    regularizer: Any = None
    augment: Any = None
    conditioning: Any = None
    trainer: Any = None
    logger: Any = None
    callbacks: Any = None
    evaluation: Any = None
    model: Any = None
    paths: Any = None
    bench: Any = None  # python -m ganlab.bench's own node (conf/bench.yaml)
    task_name: str = "train"
    seed: int = 0
    # Discriminator updates per generator update; by default the loss's (WGAN: 5).
    n_critic: int = "${oc.select:loss.recommended.n_critic,1}"  # type: ignore[assignment]
    pack: int = 1
    lr_decay_start: float = "${oc.select:model.recommended.lr_decay_start,1.0}"  # type: ignore[assignment]
    ckpt_path: Optional[str] = None  # noqa: UP045 - OmegaConf reads typing.Optional
    on_nonfinite: str = "stop"
    ema: EMANode = field(default_factory=EMANode)
    optimized_metric: Optional[str] = None  # noqa: UP045


@dataclass
class ScheduleNode:
    _target_: str = "ganlab.schedule.UpdateSchedule"
    steps: Any = "${trainer.max_steps}"
    n_critic: Any = "${n_critic}"
    lr_decay_start: Any = "${lr_decay_start}"


@dataclass
class ModelNode:
    """The parts every adversarial module takes; networks first (they draw the random
    initial weights, G before D)."""

    _target_: str = MISSING
    name: str = MISSING
    generator: Any = MISSING
    discriminator: Any = MISSING
    loss: Any = "${loss}"
    optimizer: Any = "${optimizer}"
    schedule: ScheduleNode = field(default_factory=ScheduleNode)
    ema: Any = "${ema}"
    # Named penalties beside the loss's own; a model adds its own (stylegan: path_length).
    penalties: dict = field(default_factory=lambda: {"regularizer": "${regularizer}"})
    augment: Any = "${augment}"
    conditioning: Any = "${conditioning}"
    pack: Any = "${pack}"
    on_nonfinite: Any = "${on_nonfinite}"
    # The training setting the model's paper uses (optimizer, lr, betas, ema_half_life_kimg,
    # lr_decay_start), which optimizer=auto, ema and lr_decay_start take by default.
    recommended: dict = field(default_factory=dict)
    # torch.compile G and D in place (a gradient-penalised D stays eager); channels_last
    # memory format for convolutions (docs/BENCHMARKS.md).
    compile: bool = False
    channels_last: bool = False


@dataclass
class GANNode(ModelNode):
    _target_: str = "ganlab.gan.GAN"
    latent_dim: int = MISSING
    # Default psi of the sampling command's truncation trick (mapping-network G); null: none.
    truncation: Optional[float] = None  # noqa: UP045


@dataclass
class CycleGANNode(ModelNode):
    _target_: str = "ganlab.cyclegan.CycleGAN"
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    adversarial_weight: float = 2.0
    pool_size: int = 50


def register() -> None:
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainSchema)
    store.store(group="model/schema", name="gan", node=GANNode)
    store.store(group="model/schema", name="cyclegan", node=CycleGANNode)


register()
