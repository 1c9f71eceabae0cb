"""Generator and discriminator networks: plain nn.Modules, one file per family."""

from ganlab.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from ganlab.nets.mlp import MLPDiscriminator, MLPGenerator
from ganlab.nets.progan import ProGANDiscriminator, ProGANGenerator
from ganlab.nets.r3gan import R3GANDiscriminator, R3GANGenerator
from ganlab.nets.sngan import SNGANDiscriminator, SNGANGenerator
from ganlab.nets.stylegan import StyleGANDiscriminator, StyleGANGenerator

__all__ = [
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "ProGANDiscriminator",
    "ProGANGenerator",
    "R3GANDiscriminator",
    "R3GANGenerator",
    "SNGANDiscriminator",
    "SNGANGenerator",
    "StyleGANDiscriminator",
    "StyleGANGenerator",
]
