"""Feature networks of the image metrics, chosen by name: `inception` or `classifier`.

A feature network maps images in [-1, 1] (N, C, H, W) to `(features, logits)`: features for
FID, KID and precision/recall, logits for the Inception Score and class coverage.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor, nn

from ganlab.errors import GanlabError

FEATURE_NETS = ("inception", "classifier")


def weights_sha256(module: nn.Module) -> str:
    """sha256 of a module's state_dict (names and raw bytes), identifying its weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


class FeatureNet(nn.Module):
    """A frozen network with a name, its features' width and the checksum of its weights."""

    name: str
    num_features: int
    # True when the logits are the classes of the data set, so class coverage means something.
    class_coverage: bool

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.eval()
        self.sha256 = weights_sha256(net)

    def train(self, mode: bool = True) -> FeatureNet:
        return super().train(False)  # frozen: BatchNorm statistics must never move

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class ClassifierFeatures(FeatureNet):
    """The ganlab classifier: penultimate layer as features, its class logits as logits."""

    name = "classifier"
    class_coverage = True

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__(classifier)
        self.num_features = classifier.num_features

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.net.features(x)
        return features, self.net.head(features)


def inception_weights_file(weights_path: str | Path | None = None) -> Path:
    """`weights_path`, else torch-fidelity's InceptionV3 file in the torch hub cache; never downloads."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise GanlabError(f"InceptionV3 weights file {path} does not exist; fix weights_path")
        return path
    name = URL_INCEPTION_V3.rsplit("/", 1)[-1]
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    if not (folder / name).is_file():
        raise GanlabError(
            f"InceptionV3 weights not found: put {name} in {folder} (from {URL_INCEPTION_V3}) "
            "or set weights_path; ganlab never downloads them"
        )
    return folder / name


class InceptionFeatures(FeatureNet):
    """torch-fidelity's InceptionV3, the network of the standard FID (2048 pool features, logits)."""

    name = "inception"
    class_coverage = False
    num_features = 2048

    def __init__(self, weights_path: str | Path | None = None) -> None:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        # An explicit path is what stops torch-fidelity from downloading the weights.
        net = FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048", "logits_unbiased"],
            feature_extractor_weights_path=str(inception_weights_file(weights_path)),
        )
        super().__init__(net)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # torch-fidelity expects 3-channel uint8 in [0, 255] and resizes to 299 itself.
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        features, logits = self.net(x.expand(-1, 3, -1, -1))
        return features, logits


def build_feature_net(
    name: str, *, weights_path: str | Path | None = None, classifier: nn.Module | None = None
) -> FeatureNet:
    """The feature network called `name`; `classifier` is the trained ganlab.classifier model."""
    if name == "inception":
        return InceptionFeatures(weights_path)
    if name == "classifier":
        if classifier is None:
            raise GanlabError("feature network classifier needs a trained classifier model")
        return ClassifierFeatures(classifier)
    raise GanlabError(f"unknown feature network {name!r}; use one of {', '.join(FEATURE_NETS)}")


@torch.inference_mode()
def extract(net: FeatureNet, images: Tensor, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """(features (N, D), logits (N, K)) of images in [-1, 1], in batches on the net's device."""
    device = next(net.parameters()).device
    outputs = [net(batch.to(device)) for batch in images.split(batch_size)]
    features = torch.cat([f for f, _ in outputs]).float().cpu()
    logits = torch.cat([lg for _, lg in outputs]).float().cpu()
    return features, logits
