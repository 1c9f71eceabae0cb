"""CycleGAN (Zhu et al. 2017): unpaired image-to-image translation between domains A and B.

Two generators, G: A -> B and F: B -> A (``generator.a2b``, ``generator.b2a``), and two
discriminators, D_B on B and D_A on A (``discriminator.b``, ``discriminator.a``). The full
objective (eq. 3, with the identity term of section 5.2):

    L = L_GAN(G, D_B) + L_GAN(F, D_A) + lambda L_cyc + lambda_id lambda L_identity
    L_cyc = E|F(G(a)) - a|_1 + E|G(F(b)) - b|_1      L_identity = E|G(b) - b|_1 + E|F(a) - a|_1

``CycleGAN`` is an ``AdversarialModule`` beside ``GAN``: it shares the optimizers, schedule,
EMA, logging, checkpoints and divergence checks, and has its own training step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ganlab.adversarial import AdversarialModule
from ganlab.critic import Conditioning, check_shape, probe
from ganlab.errors import GanlabError
from ganlab.losses import GANLoss
from ganlab.nets.layers import eval_mode
from ganlab.options import at_least, non_negative

DIRECTIONS = ("a2b", "b2a")


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


class CycleGAN(AdversarialModule):
    """CycleGAN with manual optimization. Per step, on a batch (a, b) of unpaired images:

    1. both generators in one update, both discriminators frozen while the gradient flows
       through them: ``adversarial_weight`` * (adversarial terms) + ``lambda_cycle`` * L_cyc
       + ``lambda_cycle * lambda_identity`` * L_identity;
    2. D_A and D_B in one update of their joint optimizer (disjoint parameters, so the same
       as one update each) on real images and on this step's fakes through the image pools.

    The adversarial terms come from the ``loss`` object (LSGAN in the paper). ganlab's
    LSGAN G loss is 0.5 (D(G(a)) - 1)^2; the paper's is (D(G(a)) - 1)^2, hence
    ``adversarial_weight`` 2 by default. Logged: ``d_loss`` (the mean of D_A's and D_B's),
    ``d_real``, ``d_fake``, ``g_adversarial``, ``cycle``, ``identity`` (unweighted; when its
    weight is not 0) and ``g_loss`` (the total).
    """

    translates = True

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: GANLoss,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        adversarial_weight: float = 2.0,
        pool_size: int = 50,
        augment: Any = None,
        conditioning: Conditioning | None = None,
        pack: int = 1,
        **parts: Any,
    ) -> None:
        super().__init__(generator, discriminator, extra_penalties=tuple(loss.penalties),
                         augment=augment, **parts)
        if conditioning is not None and conditioning.mode != "none":
            raise GanlabError(f"conditioning={conditioning.mode} is not supported by CycleGAN "
                              "(it translates images, with no classes); use conditioning=none")
        if pack != 1:
            raise GanlabError(f"pack={pack} is not supported by CycleGAN; use pack=1")
        if self.schedule.n_critic != 1:
            raise GanlabError(
                f"n_critic={self.schedule.n_critic} is not allowed: CycleGAN updates its "
                "discriminators once per generator update (add n_critic=1)")
        if len(self.penalties.items):
            names = ", ".join(p.name for p in self.penalties.items)
            raise GanlabError(f"penalties ({names}) are not supported by CycleGAN; use "
                              "regularizer=none and a loss without its own penalty")
        self.loss = loss
        self.lambda_cycle = non_negative(lambda_cycle, "lambda_cycle")
        self.lambda_identity = non_negative(lambda_identity, "lambda_identity")
        self.adversarial_weight = non_negative(adversarial_weight, "adversarial_weight")
        self.pools = {"a": ImagePool(at_least(pool_size, "pool_size", 0)),
                      "b": ImagePool(pool_size)}

    def check_data(self, datamodule: Any) -> None:
        if datamodule.num_domains != 2:
            raise GanlabError(
                f"CycleGAN translates between two image domains but data={datamodule.name} is "
                "one; use data=unpaired (data.path_a=DIR data.path_b=DIR, or neither for the "
                "built-in digits pair)")
        shape = list(datamodule.shape)
        x = torch.zeros(2, *shape)
        made = probe("model.generator", self.generator.a2b, x)
        check_shape("model.generator", list(made.shape[1:]), shape)
        probe("model.discriminator", self.discriminator.a, x)

    def translate(self, x: Tensor, direction: str) -> Tensor:
        """``x`` translated ``a2b`` or ``b2a`` by the EMA generators if any (eval mode, the
        mode restored after), on this module's device."""
        generators, _ = self.eval_generator()
        with eval_mode(getattr(generators, direction)) as net:
            return net(x.to(self.device))

    @torch.no_grad()
    def discriminator_outputs(self, real_b: Tensor, real_a: Tensor) -> tuple[Tensor, Tensor]:
        """D_B's logits (eval mode) on real B images and on translations of A images."""
        fake = self.translate(real_a, "a2b")
        with eval_mode(self.discriminator.b) as d:
            return d(real_b.to(self.device)), d(fake)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real_a, real_b = batch  # (B, C, H, W) each, unpaired
        opt_g, opt_d = self.begin_step()
        self.loss.step = self.g_steps  # instance-noise annealing
        g, d = self.generator, self.discriminator
        d_a, d_b = self.critic.augmented(d.a), self.critic.augmented(d.b)

        with self.frozen(d):  # gradients flow through D_A and D_B, not into them
            fake_b, fake_a = g.a2b(real_a), g.b2a(real_b)
            adversarial = (
                self.loss.generator_loss(d_b, fake_b, real=real_b)["loss"]
                + self.loss.generator_loss(d_a, fake_a, real=real_a)["loss"]
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
            self.update(opt_g, g_loss, g, "generator")

        terms_a = self.loss.discriminator_loss(d_a, real_a, self.pools["a"](fake_a))
        real_logits = [self.loss.real_logits.flatten()]
        terms_b = self.loss.discriminator_loss(d_b, real_b, self.pools["b"](fake_b))
        real_logits.append(self.loss.real_logits.flatten())
        d_loss = terms_a["loss"] + terms_b["loss"]
        self.update(opt_d, d_loss, d, "discriminator")
        self.d_updates += 1
        self.loss.after_discriminator_step(d)
        self.log_now(self.critic.observe(torch.cat(real_logits), 2 * real_a.shape[0]))

        # One row of terms (the step log averages over a list of D updates; here one entry).
        terms = {k: (terms_a[k].detach() + terms_b[k].detach()) / 2 for k in terms_a}
        terms |= {k: v.detach() for k, v in g_terms.items()}
        self.end_step([terms], g_loss, 2 * real_a.shape[0], real_a.shape[0])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["ganlab"]["image_pools"] = {k: p.images for k, p in self.pools.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        for key, images in checkpoint.get("ganlab", {}).get("image_pools", {}).items():
            self.pools[key].images = images
