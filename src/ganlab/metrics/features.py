"""Feature networks of the image metrics, chosen by name: `inception`, `dinov2` or `classifier`.

A feature network maps images in [-1, 1] (N, C, H, W) to `(features, logits)`: features for
FID (FD), KID, precision/recall and density/coverage, logits (None for DINOv2) for the
Inception Score and class coverage. The networks of other code bases (torch-fidelity's
InceptionV3 and DINOv2) see what those code bases feed them: uint8 RGB images.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import torch
from torch import Tensor, nn

from ganlab.errors import GanlabError

FEATURE_NETS = ("inception", "dinov2", "classifier")
INCEPTION_FILES = (
    "weights-inception-2015-12-05-6726825d.pth",  # torch-fidelity's release
    "pt_inception-2015-12-05-6726825d.pth",  # pytorch-fid's: the same file
)
# sha256 of that file (95,628,359 bytes), whose first 8 hex digits are those in its published
# names (torch.hub's convention); `evaluation=paper` refuses any other file.
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks; remembered per (path, size, mtime),
    since a run checks its weights file when it is configured and again when it evaluates."""
    stat = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_file(name: str, weights_path: str | Path | None) -> Path:
    """The weights file of feature network ``name`` (inception, dinov2); GanlabError in one
    line naming where to put it when there is none."""
    if name == "dinov2":
        from ganlab.metrics.dinov2 import dinov2_weights_file

        return dinov2_weights_file(weights_path)
    return inception_weights_file(weights_path)


def check_file_sha256(path: Path, expected: str | None) -> str:
    """The file's sha256; GanlabError when it is not ``expected`` (None: anything goes)."""
    actual = file_sha256(path)
    if expected is not None and actual != str(expected).lower():
        raise GanlabError(
            f"weights file {path} has sha256 {actual}, not the published {expected}; use the "
            "published file, or set evaluation.weights_sha256=null to accept this one (the "
            "numbers are then not comparable with papers)"
        )
    return actual


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
    # The name of the Frechet distance in these features: FID in Inception's, FD_DINOv2 in
    # DINOv2's (Stein et al. 2023); the classifier's keeps the name FID, as before.
    fd_name = "fid"
    # sha256 of the weights file the network was loaded from (None: not from a file).
    file_sha256: str | None = None

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
    """`weights_path`, else the InceptionV3 file (torch-fidelity's or pytorch-fid's name) in
    the torch hub cache; never downloads."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise GanlabError(f"InceptionV3 weights file {path} does not exist; fix weights_path")
        return path
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    for name in INCEPTION_FILES:
        if (folder / name).is_file():
            return folder / name
    raise GanlabError(
        f"InceptionV3 weights not found: put {INCEPTION_FILES[0]} in {folder} (from "
        f"{URL_INCEPTION_V3}) or set weights_path; ganlab never downloads them"
    )


class InceptionFeatures(FeatureNet):
    """torch-fidelity's InceptionV3, the network of the standard FID (2048 pool features, logits)."""

    name = "inception"
    class_coverage = False
    num_features = 2048

    def __init__(self, weights_path: str | Path | None = None,
                 weights_sha256: str | None = None) -> None:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = inception_weights_file(weights_path)
        file_hash = check_file_sha256(path, weights_sha256)
        # An explicit path is what stops torch-fidelity from downloading the weights. The
        # features are its defaults for the metrics: the 2048 pool features for FID, KID and
        # precision/recall, the logits without the bias for IS ("logits_unbiased").
        net = FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048", "logits_unbiased"],
            feature_extractor_weights_path=str(path),
        )
        super().__init__(net)
        self.file_sha256 = file_hash

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # torch-fidelity expects 3-channel uint8 in [0, 255] and resizes to 299 itself.
        features, logits = self.net(to_uint8_rgb(x))
        return features, logits


def to_uint8_rgb(x: Tensor) -> Tensor:
    """Images in [-1, 1] -> uint8 RGB as written to a PNG: (x + 1) * 127.5 rounded, which
    inverts ganlab's uint8 -> [-1, 1] exactly; gray images get three equal channels (as
    PIL's convert("RGB") gives torch-fidelity for a gray PNG)."""
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.expand(-1, 3, -1, -1)


class DinoV2Features(FeatureNet):
    """DINOv2 ViT-L/14's class token (1024 features) through torch-fidelity's DINOv2
    pipeline (ganlab.metrics.dinov2); no logits, so no Inception Score."""

    class_coverage = False
    fd_name = "fd_dinov2"

    def __init__(self, weights_path: str | Path | None = None,
                 weights_sha256: str | None = None) -> None:
        from ganlab.metrics.dinov2 import TorchFidelityDinoV2, dinov2_weights_file, load_dinov2

        path = dinov2_weights_file(weights_path)
        file_hash = check_file_sha256(path, weights_sha256)
        model, name = load_dinov2(path)
        super().__init__(TorchFidelityDinoV2(model, name))
        self.name, self.num_features, self.file_sha256 = name, model.norm.normalized_shape[0], file_hash

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        (features,) = self.net(to_uint8_rgb(x))
        return features, None


def build_feature_net(
    name: str, *, weights_path: str | Path | None = None, classifier: nn.Module | None = None,
    weights_sha256: str | None = None,
) -> FeatureNet:
    """The feature network called `name`; `classifier` is the trained ganlab.classifier model;
    `weights_sha256`: the sha256 the weights file must have (inception, dinov2)."""
    if name == "inception":
        return InceptionFeatures(weights_path, weights_sha256)
    if name == "dinov2":
        return DinoV2Features(weights_path, weights_sha256)
    if name == "classifier":
        if classifier is None:
            raise GanlabError("feature network classifier needs a trained classifier model")
        return ClassifierFeatures(classifier)
    raise GanlabError(f"unknown feature network {name!r}; use one of {', '.join(FEATURE_NETS)}")


@torch.inference_mode()
def extract(net: FeatureNet, images: Tensor, batch_size: int = 256) -> tuple[Tensor, Tensor | None]:
    """(features (N, D), logits (N, K) or None) of images in [-1, 1], in batches on the net's
    device; both float32 on the CPU, as the networks give them."""
    device = next(net.parameters()).device
    outputs = [net(batch.to(device)) for batch in images.split(batch_size)]
    features = torch.cat([f for f, _ in outputs]).float().cpu()
    if outputs[0][1] is None:
        return features, None
    return features, torch.cat([lg for _, lg in outputs]).float().cpu()
