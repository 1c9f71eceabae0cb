"""CycleGAN (Zhu et al. 2017): unpaired image-to-image translation between domains A and B.

Two generators, G: A -> B and F: B -> A (``generator.a2b``, ``generator.b2a``), and two
discriminators, D_B on B and D_A on A (``discriminator.b``, ``discriminator.a``). The full
objective (eq. 3, with the identity term of section 5.2):

    L = L_GAN(G, D_B) + L_GAN(F, D_A) + lambda L_cyc + lambda_id lambda L_identity
    L_cyc = E|F(G(a)) - a|_1 + E|G(F(b)) - b|_1      L_identity = E|G(b) - b|_1 + E|F(a) - a|_1

``CycleGAN`` is a ``GAN``: it keeps GAN's checkpoints, logging, divergence checks, EMA and
step counting, and replaces the training step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from ganlab import distributed
from ganlab.ema import ema_beta, update_ema
from ganlab.errors import GanlabError
from ganlab.module import GAN

DIRECTIONS = ("a2b", "b2a")


def check_config(cfg: DictConfig) -> None:
    """GanlabError for a model=cyclegan run that cannot work, or unpaired data without it."""
    from ganlab.data.unpaired import check_paths
    from ganlab.nets.cyclegan import check_image_size, patch_layers

    model, data = cfg.model.get("name"), str(cfg.data.get("_target_", "?"))
    unpaired = "path_a" in cfg.data
    if model == "cyclegan" and not unpaired:
        raise GanlabError(
            f"model=cyclegan translates between two image domains but the data ({data}) is "
            "one; use data=unpaired (data.path_a=DIR data.path_b=DIR, or neither for the "
            "built-in digits pair)"
        )
    if model != "cyclegan" and unpaired:
        raise GanlabError(
            f"data=unpaired holds two image domains for model=cyclegan; model={model} learns "
            "one distribution: use data=image_folder data.path=DIR"
        )
    check_paths(cfg.data.path_a, cfg.data.path_b)
    if cfg.n_critic != 1:
        raise GanlabError(
            f"n_critic={cfg.n_critic} is not allowed: model=cyclegan updates its "
            "discriminators once per generator update (loss=wgan and wgan_gp set 5; add n_critic=1)"
        )
    if cfg.get("regularizer"):
        raise GanlabError(
            f"a D regularizer ({cfg.regularizer.get('_target_')}) is not supported with "
            "model=cyclegan; use regularizer=none"
        )
    noise_callbacks = ("SampleGridCallback", "DiagnosticsCallback", "EvaluationCallback")
    for name, node in (cfg.get("callbacks") or {}).items():
        if str((node or {}).get("_target_", "")).rsplit(".", 1)[-1] in noise_callbacks:
            raise GanlabError(
                f"callbacks.{name} ({node._target_}) samples noise, which model=cyclegan does "
                "not take; use callbacks=cyclegan"
            )
    check_image_size(cfg.data.image_size)
    patch_layers(cfg.data.image_size, cfg.model.discriminator.get("num_layers"))


class ImagePool:
    """A history of generated images (Shrivastava et al. 2017; Zhu et al. 2017, sec. 4).

    D is shown, for each new fake, either the fake itself or, once the pool is full, with
    probability 1/2 an older fake from the pool, which the new one then replaces. ``size`` 0
    passes fakes through. Draws use torch's global RNG, so they are part of a resumed run's
    random state; the pool's contents go into checkpoints (``images``).
    """

    def __init__(self, size: int = 50) -> None:
        self.size = size
        self.images: Tensor | None = None  # (N <= size, C, H, W), detached

    @torch.no_grad()
    def __call__(self, fakes: Tensor) -> Tensor:
        fakes = fakes.detach()
        if self.size == 0:
            return fakes
        stored = 0 if self.images is None else len(self.images)
        if self.images is not None and self.images.device != fakes.device:
            self.images = self.images.to(fakes.device)
        fill = min(self.size - stored, len(fakes))  # while filling up: store and show as is
        if fill:
            new = fakes[:fill].clone()
            self.images = new if self.images is None else torch.cat([self.images, new])
        rest = fakes[fill:]
        if not len(rest):
            return fakes
        # Distinct slots, so two fakes of one batch never swap with the same old image.
        swap = (torch.rand(len(rest), device=fakes.device) < 0.5) & (
            torch.arange(len(rest), device=fakes.device) < self.size
        )
        slots = torch.randperm(self.size, device=fakes.device)[: len(rest)]
        slots, swapped = slots[swap[: len(slots)]], rest[swap]
        shown = rest.clone()
        shown[swap] = self.images[slots]
        self.images[slots] = swapped
        return torch.cat([fakes[:fill], shown])


class CycleGAN(GAN):
    """CycleGAN with manual optimization. Per step, on a batch (a, b) of unpaired images:

    1. both generators in one update, both discriminators frozen while the gradient flows
       through them: ``adversarial_weight`` * (adversarial terms) + ``lambda_cycle`` * L_cyc
       + ``lambda_cycle * lambda_identity`` * L_identity;
    2. D_A and D_B in one update of their joint optimizer (disjoint parameters, so the same
       as one update each) on real images and on this step's fakes through the image pools.

    The adversarial terms come from the ``loss`` object (LSGAN in the paper). ganlab's
    LSGAN G loss is 0.5 (D(G(a)) - 1)^2; the paper's is (D(G(a)) - 1)^2, hence
    ``adversarial_weight`` 2 by default. Learning rates stay constant for the first
    ``lr_decay_start`` fraction of the steps and then decay linearly to 0 (100 + 100 epochs
    in the paper). Logged: ``d_loss`` (the mean of D_A's and D_B's), ``d_real``, ``d_fake``,
    ``g_adversarial``, ``cycle``, ``identity`` (unweighted; when its weight is not 0) and
    ``g_loss`` (the total).
    """

    def __init__(
        self,
        *,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        adversarial_weight: float = 2.0,
        pool_size: int = 50,
        lr_decay_start: float = 0.5,
        **gan: Any,
    ) -> None:
        super().__init__(lr_decay_start=lr_decay_start, **gan)
        self.lambda_cycle = lambda_cycle
        self.lambda_identity = lambda_identity
        self.adversarial_weight = adversarial_weight
        self.pools = {"a": ImagePool(pool_size), "b": ImagePool(pool_size)}

    @torch.no_grad()
    def translate(self, x: Tensor, direction: str) -> Tensor:
        """``x`` translated ``a2b`` or ``b2a`` by the EMA generators if any (eval mode, the
        mode restored after), on this module's device."""
        generators, _ = self.eval_generator()
        net = getattr(generators, direction)
        was_training = net.training
        net.eval()
        try:
            return net(x.to(self.device))
        finally:
            net.train(was_training)

    def generate(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        raise GanlabError(
            "model=cyclegan translates images and has no latent space to sample: use its own "
            "callbacks (callbacks=cyclegan) and python -m ganlab.sample ... input=DIR output=DIR"
        )

    def _judge(self, net: nn.Module) -> Callable[[Tensor], Tensor]:
        """A discriminator as the loss sees it: behind DiffAugment when there is one."""
        if self.augment is None:
            return net
        return lambda x: net(self.augment(x))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real_a, real_b = batch  # (B, C, H, W) each, unpaired
        opt_g, opt_d = self.optimizers()
        self._decay_learning_rates()
        self.loss.step = self.g_steps  # instance-noise annealing
        g, d = self.generator, self.discriminator
        d_a, d_b = self._judge(d.a), self._judge(d.b)

        with self._frozen(d):  # gradients flow through D_A and D_B, not into them
            fake_b, fake_a = g.a2b(real_a), g.b2a(real_b)
            adversarial = (
                self.loss.generator_loss(d_b, fake_b)["loss"]
                + self.loss.generator_loss(d_a, fake_a)["loss"]
            )
            cycle = (g.b2a(fake_b) - real_a).abs().mean() + (g.a2b(fake_a) - real_b).abs().mean()
            g_loss = self.adversarial_weight * adversarial + self.lambda_cycle * cycle
            g_terms = {"g_adversarial": adversarial, "cycle": cycle}
            if self.lambda_identity > 0:  # two more generator passes; skipped when off
                identity = (g.a2b(real_b) - real_b).abs().mean() + (
                    g.b2a(real_a) - real_a
                ).abs().mean()
                g_loss = g_loss + self.lambda_cycle * self.lambda_identity * identity
                g_terms["identity"] = identity
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            self._optimizer_step(opt_g, g_loss, g, "generator")

        terms_a = self.loss.discriminator_loss(d_a, real_a, self.pools["a"](fake_a))
        terms_b = self.loss.discriminator_loss(d_b, real_b, self.pools["b"](fake_b))
        d_loss = terms_a["loss"] + terms_b["loss"]
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        self._optimizer_step(opt_d, d_loss, d, "discriminator")
        self.loss.after_discriminator_step(d)

        batch_size = real_a.shape[0] * distributed.world_size()  # over all ranks
        self.images_seen += 2 * batch_size  # real images of both domains
        if self.ema_half_life_kimg > 0:
            update_ema(self.generator_ema, g, ema_beta(batch_size, self.ema_half_life_kimg))
        self.g_steps += 1
        # One row of terms (GAN._record averages over a list of D updates; here one entry).
        terms = {k: (terms_a[k].detach() + terms_b[k].detach()) / 2 for k in terms_a}
        terms |= {k: v.detach() for k, v in g_terms.items()}
        self._record([terms], g_loss.detach())
        if self.g_steps % self.log_every_n_steps == 0 or self.g_steps >= self.max_steps:
            self.flush_logs()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["ganlab"]["image_pools"] = {k: p.images for k, p in self.pools.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        for key, images in checkpoint.get("ganlab", {}).get("image_pools", {}).items():
            self.pools[key].images = images
