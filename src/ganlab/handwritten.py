"""The hand-written PyTorch loop the benchmark sets ganlab against: the same G, D, loss and
optimizers, built the same way from the same seed, on the same real batches, in a plain loop."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, open_dict
from torch.utils.flop_counter import FlopCounterMode

from ganlab.build import instantiate_node
from ganlab.errors import GanlabError
from ganlab.measure import bench_device
from ganlab.train import fit


def _autocast(cfg: DictConfig, device: torch.device) -> contextlib.AbstractContextManager:
    precision = str(cfg.trainer.precision)
    if precision in ("32-true", "32"):
        return contextlib.nullcontext()
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise GanlabError(
        f"ganlab.bench compares trainer.precision 32-true or bf16-mixed, not {precision}"
    )


def seeded_module(cfg: DictConfig, options: bool = True) -> Any:
    """The run's module as ganlab.train builds it (after seeding, so with the same initial
    weights); without ``model.compile`` and ``model.channels_last`` unless ``options``."""
    L.seed_everything(cfg.seed, verbose=False)
    if not options:
        cfg = copy.deepcopy(cfg)
        with open_dict(cfg):
            cfg.model.compile, cfg.model.channels_last = False, False
    return instantiate_node(cfg, "model")


def check_comparable(module: Any) -> None:
    """The hand-written loop is the plain unconditional game (with the loss's own penalty,
    WGAN-GP's, every D update); refuse what it does not do."""
    own = list(module.loss.penalties)
    extras = {
        "penalties": len(module.penalties.items) > len(own) or any(p.interval != 1 for p in own),
        "augment": getattr(module.critic, "augment", None) is not None,
        "ema": module.ema.enabled,
        "conditioning": bool(module.num_classes),
        "pack": getattr(module, "pack", 1) != 1,
        "noise-to-sample model": not module.samples_from_noise,
    }
    used = [name for name, on in extras.items() if on]
    if used:
        raise GanlabError(
            f"ganlab.bench compares the plain game; the hand-written loop has no {', '.join(used)}"
            " (set regularizer=none augment=none ema.half_life_kimg=0 conditioning=none pack=1,"
            " and a model that samples from noise)"
        )


def handwritten_step(cfg: DictConfig, device: torch.device, options: bool = True) -> Callable:
    """One generator step (n_critic D updates, then one G update) of a plain PyTorch loop over
    the same G, D, loss and optimizers as ganlab's, built the same way from the same seed, and
    the same real batches (the data module's sampler, drawn on the device); the step returns
    its (D loss averaged over the D updates, G loss), as ganlab logs them."""
    module = seeded_module(cfg, options)
    check_comparable(module)
    G, D, loss = module.generator.to(device), module.discriminator.to(device), module.loss
    opt_g = module.optimizer_factories["generator"](G.parameters())
    opt_d = module.optimizer_factories["discriminator"](D.parameters())
    if cfg.trainer.get("benchmark") is not None:
        torch.backends.cudnn.benchmark = bool(cfg.trainer.benchmark)
    data = instantiate_node(cfg, "data")
    data.setup()
    n_critic, batch_size, latent_dim = module.schedule.n_critic, data.batch_size, module.latent_dim
    autocast = _autocast(cfg, device)

    def step() -> tuple[torch.Tensor, torch.Tensor]:
        real, _ = data._draw(n_critic * batch_size, device)
        d_losses = []
        with autocast:
            for chunk in real.chunk(n_critic):
                with torch.no_grad():
                    fake = G(torch.randn(batch_size, latent_dim, device=device))
                d_loss = loss.discriminator_loss(D, chunk, fake)["loss"]
                for penalty in loss.penalties:  # WGAN-GP's, as ganlab.penalties adds it
                    term = penalty(D, chunk, fake)
                    d_loss = d_loss + penalty.weight * penalty.interval * term
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                loss.after_discriminator_step(D)
                d_losses.append(d_loss.detach())
            D.requires_grad_(False)  # G's step: gradients flow through D, not into it
            g_loss = loss.generator_loss(D, G(torch.randn(batch_size, latent_dim, device=device)),
                                         real=real.chunk(n_critic)[0])  # as ganlab's G step
            opt_g.zero_grad(set_to_none=True)
            g_loss["loss"].backward()
            opt_g.step()
            D.requires_grad_(True)
        return torch.stack(d_losses).float().mean(), g_loss["loss"].detach().float()

    return step


class _Unattributed:
    """Stands in for FlopCounterMode's module tracker, whose backward hooks do not survive
    ``autograd.grad(create_graph=True)`` (WGAN-GP's penalty); only the total is needed."""

    parents = ("Global",)

    def __enter__(self) -> None: ...

    def __exit__(self, *args: object) -> None: ...


def step_flops(cfg: DictConfig) -> int:
    """Model FLOPs of one generator step (forward and backward of every update; optimizer
    arithmetic is not counted), by torch.utils.flop_counter on the hand-written loop."""
    step = handwritten_step(cfg, bench_device(cfg), options=False)
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _Unattributed()
    with counter:
        step()
    return int(counter.get_total_flops())


def ganlab_path_config(cfg: DictConfig, max_steps: int) -> DictConfig:
    """The run's config without callbacks, logger or resuming, for ``max_steps`` steps."""
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.trainer.max_steps = max_steps
        cfg.callbacks = None
        cfg.logger = None
        cfg.ckpt_path = None
    return cfg


class _LossRecorder(L.Callback):
    """The (D loss, G loss) ganlab logged at each generator step (logged every step)."""

    def __init__(self) -> None:
        self.losses: list[tuple[float, float]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        logged = pl_module.last_logged
        self.losses.append((logged["train/d_loss"], logged["train/g_loss"]))


def losses_of_paths(cfg: DictConfig, steps: int = 3) -> dict[str, list[tuple[float, float]]]:
    """Each path's (D loss, G loss) for its first ``steps`` generator steps from the run's
    seed: equal, bit for bit, when the two paths compute the same thing, which is what makes
    their speed ratio mean something."""
    recorder = _LossRecorder()
    short = ganlab_path_config(cfg, steps)
    with open_dict(short):
        short.trainer.log_every_n_steps = 1
    fit(short, extra_callbacks=[recorder])
    step = handwritten_step(cfg, bench_device(cfg))
    handwritten = [tuple(float(v) for v in step()) for _ in range(steps)]
    return {"ganlab": recorder.losses, "handwritten": handwritten}


# -- both paths, interleaved ---------------------------------------------------------------
