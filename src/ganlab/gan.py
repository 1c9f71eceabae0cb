"""``GAN``: a generator of samples from noise against a discriminator (Goodfellow et al. 2014),
with n_critic D updates per G update, D frozen during G's update, and any loss, penalty,
augmentation, conditioning and packing the run's parts bring."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ganlab.adversarial import AdversarialModule
from ganlab.critic import Conditioning, check_shape, probe
from ganlab.errors import GanlabError
from ganlab.losses import GANLoss
from ganlab.nets.layers import eval_mode
from ganlab.options import at_least


class GAN(AdversarialModule):
    """One training step (one batch from the data module, ``n_critic * B`` real samples):
    ``n_critic`` discriminator updates, each on a fresh real chunk and fresh fakes (G's
    output detached), then one generator update with D's parameters frozen while the
    gradient flows through D.

    ``latent_dim``: the size of z. ``truncation``: the default psi with which the sampling
    command draws (a mapping-network G; training and metrics use none). ``pack``: PacGAN
    (Lin et al. 2018), D judges groups of ``pack`` samples; D must have been built for it.
    """

    samples_from_noise = True

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: GANLoss,
        latent_dim: int,
        augment: Any = None,
        conditioning: Conditioning | None = None,
        pack: int = 1,
        truncation: float | None = None,
        **parts: Any,
    ) -> None:
        super().__init__(generator, discriminator, extra_penalties=tuple(loss.penalties),
                         augment=augment, **parts)
        self.loss = loss
        self.latent_dim = at_least(latent_dim, "latent_dim")
        self.truncation = truncation
        self.conditioning = conditioning or Conditioning()
        self.conditioning.check_networks(generator, discriminator)
        self.num_classes = self.conditioning.num_classes
        self.pack = at_least(pack, "pack")
        if getattr(discriminator, "pack", 1) != self.pack:
            raise GanlabError(
                f"pack={pack} is not supported by {type(discriminator).__name__}, which judges "
                "one sample at a time; use pack=1, or a discriminator with a pack option")
        if self.pack > 1 and self.num_classes:
            raise GanlabError(f"pack={pack} has no conditional variant (a packed group would "
                              "mix labels); use conditioning=none or pack=1")

    def check_data(self, datamodule: Any) -> None:
        if datamodule.num_domains != 1:
            raise GanlabError(
                f"data={datamodule.name} holds {datamodule.num_domains} image domains for a "
                f"translation model (model=cyclegan); {type(self).__name__} learns one "
                "distribution: use data=image_folder data.path=DIR")
        shape, n = list(datamodule.shape), 2 * self.pack
        labels = (torch.zeros(n, dtype=torch.long),) if self.num_classes else ()
        made = probe("model.generator", self.generator, torch.zeros(n, self.latent_dim),
                          *labels)
        check_shape("model.generator", list(made.shape[1:]), shape)
        probe("model.discriminator", self.discriminator, torch.zeros(n, *shape), *labels)
        if datamodule.batch_size % self.pack:
            raise GanlabError(f"data.batch_size={datamodule.batch_size} is not a multiple of "
                              f"pack={self.pack}; choose a batch size divisible by {self.pack}")

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.latent_dim, device=self.device, generator=generator)

    def generate(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Samples for display: the EMA generator if any, else G, in eval mode (its mode
        restored after); ``y`` labels for a conditional model."""
        net, _ = self.eval_generator()
        with eval_mode(net):
            labels = () if y is None else (y.to(self.device),)
            return net(z.to(self.device), *labels)

    @torch.no_grad()
    def discriminator_outputs(self, real: Tensor, z: Tensor,
                              y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """D's logits (eval mode) on real samples and on G's samples for latents ``z``."""
        labels = () if y is None else (y.to(self.device),)
        fake = self.generate(z, y)
        with eval_mode(self.discriminator) as d:
            return d(real.to(self.device), *labels), d(fake, *labels)

    def _g(self, z: Tensor, y: Tensor | None) -> Tensor:
        return self.generator(z) if y is None else self.generator(z, y)

    def training_step(self, batch: tuple[Tensor, Tensor | None], batch_idx: int) -> None:
        real, labels = batch  # (n_critic * B, *shape), (n_critic * B,) or None
        opt_g, opt_d = self.begin_step()
        chunks = real.chunk(self.schedule.n_critic)
        label_chunks = labels.chunk(len(chunks)) if self.num_classes else [None] * len(chunks)
        batch_size = chunks[0].shape[0]
        self.loss.step = self.g_steps  # instance-noise annealing

        d_terms: list[dict[str, Tensor]] = []
        with self.frozen(self.generator):
            for chunk, y in zip(chunks, label_chunks, strict=True):
                # A conditional G draws fakes for the real chunk's labels, so one critic
                # D(., y) scores both (and the penalties' interpolates).
                with torch.no_grad():
                    fake = self._g(self.sample_latent(chunk.shape[0]), y)
                critic = self.critic.view(y)
                terms = self.loss.discriminator_loss(critic, chunk, fake)
                terms = self.penalties.add("discriminator", self.d_updates, terms,
                                           critic=critic, real=chunk, fake=fake)
                self.d_updates += 1
                self.update(opt_d, terms["loss"], self.discriminator, "discriminator")
                self.loss.after_discriminator_step(self.discriminator)
                self.log_now(self.critic.observe(self.loss.real_logits, chunk.shape[0]))
                d_terms.append({k: v.detach() for k, v in terms.items()})

        with self.frozen(self.discriminator):  # gradients flow through D, not into it
            y = label_chunks[0]
            fake = self._g(self.sample_latent(batch_size), y)
            # The first real chunk (its labels are y): a relativistic loss pairs it with fake.
            g_terms = self.loss.generator_loss(self.critic.view(y), fake, real=chunks[0])
            g_terms = self.penalties.add(
                "generator", self.g_steps, g_terms, generator=self.generator,
                latents=lambda: self.sample_latent(batch_size))
            self.update(opt_g, g_terms["loss"], self.generator, "generator")
        self.end_step(d_terms, g_terms["loss"], real.shape[0], batch_size)
