"""Network shapes and output ranges for the sizes and channels the models support."""

import pytest
import torch

from ganlab.errors import GanlabError
from ganlab.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from ganlab.nets.dcgan import dcgan_layout


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    g = DCGANGenerator(latent_dim=16, channels=channels, image_size=size, width=8)
    d = DCGANDiscriminator(channels=channels, image_size=size, width=8)
    x = g(torch.randn(3, 16))
    assert x.shape == (3, channels, size, size)
    assert x.abs().max() <= 1.0
    assert d(x).shape == (3, 1)


def test_dcgan_layout():
    assert dcgan_layout(28) == (7, 2)
    assert dcgan_layout(32) == (4, 3)
    assert dcgan_layout(64) == (4, 4)


@pytest.mark.parametrize("size", [30, 7, 2, 36 * 3])
def test_dcgan_rejects_unsupported_sizes(size):
    with pytest.raises(GanlabError, match=f"{size}x{size}"):
        DCGANGenerator(latent_dim=8, channels=1, image_size=size)


def test_dcgan_discriminator_has_no_sigmoid():
    d = DCGANDiscriminator(channels=1, image_size=32, width=8)
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in d.modules())


@pytest.mark.parametrize("shape", [(2,), (1, 8, 8)])
def test_mlp_shapes(shape):
    g = MLPGenerator(latent_dim=10, shape=shape, hidden=(32, 64))
    d = MLPDiscriminator(shape=shape, hidden=(64, 32))
    x = g(torch.randn(5, 10))
    assert x.shape == (5, *shape)
    assert x.abs().max() <= 1.0
    assert d(x).shape == (5, 1)


def test_mlp_generator_batch_norm_normalises_each_hidden_layer():
    torch.manual_seed(0)
    g = MLPGenerator(latent_dim=8, shape=(2,), hidden=(16, 32), norm="batch")
    norms = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert [m.num_features for m in norms] == [16, 32]
    # In training mode every hidden unit leaves its BatchNorm with batch mean 0, std 1.
    h = g.net[:2](torch.randn(64, 8) * 5 + 3)
    assert torch.allclose(h.mean(0), torch.zeros(16), atol=1e-5)
    assert torch.allclose(h.var(0, unbiased=False), torch.ones(16), atol=1e-3)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in MLPGenerator(8, (2,)).modules())


def test_mlp_generator_negative_slope_zero_is_relu():
    # The 2-D recipes use a ReLU G (negative_slope 0); the default is LeakyReLU 0.2.
    torch.manual_seed(0)
    z = torch.randn(64, 8)
    relu = MLPGenerator(latent_dim=8, shape=(2,), hidden=(16,), negative_slope=0.0)
    pre = relu.net[0](z)  # (64, 16) pre-activations, some negative
    assert (pre < 0).any()
    assert torch.equal(relu.net[:2](z), torch.relu(pre))
    leaky = MLPGenerator(latent_dim=8, shape=(2,), hidden=(16,))
    leaky.load_state_dict(relu.state_dict())
    assert torch.allclose(leaky.net[:2](z), torch.nn.functional.leaky_relu(pre, 0.2))


def test_mlp_default_widths():
    g, d = MLPGenerator(latent_dim=100, shape=(2,)), MLPDiscriminator(shape=(2,))
    assert [m.out_features for m in g.modules() if isinstance(m, torch.nn.Linear)] == [
        256,
        512,
        1024,
        2,
    ]
    assert [m.out_features for m in d.modules() if isinstance(m, torch.nn.Linear)] == [
        1024,
        512,
        256,
        1,
    ]
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.3 for m in d.modules()) == 3
