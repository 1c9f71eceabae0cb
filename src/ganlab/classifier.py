"""A small CNN trained on the real labelled data, used as the feature network of the metrics.

On small or non-natural images (digits, MNIST) an ImageNet Inception says little; a classifier
of the data set itself gives features for FID/KID/precision/recall, class probabilities for
the Inception Score and predicted labels for class coverage.

    python -m ganlab.classifier data=digits

run from the repository root, trains it (or loads it from the cache under `data_dir`, default
./data) and prints its held-out accuracy and the cache path. Like train.py it composes
`conf/train.yaml`, here from `./conf`; pass `config_dir=DIR` to use another folder.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
import torch.nn.functional as F
from hydra.errors import HydraException, InstantiationException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException
from torch import Tensor, nn

from ganlab import registry
from ganlab.cli import arg, run_command
from ganlab.errors import GanlabError


class SmallCNN(nn.Module):
    """Three conv blocks and a `num_features`-wide penultimate layer, for (N, C, H, W) in [-1, 1].

    The adaptive pooling makes it take any image size >= 8.
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, width: int = 16, num_features: int = 128
    ) -> None:
        super().__init__()
        self.config = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "width": width,
            "num_features": num_features,
        }
        self.num_features = num_features

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
            ]

        w = width
        self.body = nn.Sequential(
            *block(in_channels, w),
            nn.MaxPool2d(2),
            *block(w, 2 * w),
            nn.MaxPool2d(2),
            *block(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(4 * w * 16, num_features),
            nn.ReLU(),
        )
        self.head = nn.Linear(num_features, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate-layer features, (N, num_features)."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits, (N, num_classes)."""
        return self.head(self.body(x))


def _random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image by a whole number of pixels in [-max_shift, max_shift]."""
    n, _, h, w = x.shape
    shift = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator).to(x)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    # affine_grid works in [-1, 1] coordinates, where one pixel is 2 / size.
    theta[:, 0, 2] = shift[:, 0] * 2 / w
    theta[:, 1, 2] = shift[:, 1] * 2 / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """Predicted class of each image, (N,) int64 on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(b.to(device)).argmax(1).cpu() for b in x.split(batch_size)])


def train_classifier(
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    *,
    epochs: int = 6,
    batch_size: int = 64,
    lr: float = 2e-3,
    max_shift: int = 2,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> tuple[SmallCNN, float]:
    """Train a SmallCNN with Adam and random translations; return it (eval mode) and its test accuracy.

    Deterministic on the CPU for a given seed; the global RNG is left untouched.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallCNN(x_train.shape[1], num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * -(-len(x_train) // batch_size)
    )
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x_train), generator=generator).split(batch_size):
            x = _random_shift(x_train[idx], max_shift, generator).to(device)
            loss = F.cross_entropy(model(x), y_train[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    accuracy = (predict(model, x_test) == y_test.cpu()).double().mean().item()
    return model, accuracy


def save_classifier(model: SmallCNN, path: str | Path, accuracy: float, data_name: str) -> None:
    """Write plain data (state_dict, config, accuracy, data set name), loadable with weights_only."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    record = {
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
        "config": model.config,
        "accuracy": accuracy,
        "data": data_name,
    }
    torch.save(record, path)


def load_classifier(path: str | Path) -> tuple[SmallCNN, float]:
    """The model (eval mode, CPU) and test accuracy saved by `save_classifier`."""
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        registry.check_plain(record["config"], "config")  # a cache file is data too
        model = SmallCNN(**record["config"])
        model.load_state_dict(record["state_dict"])
    except Exception as err:
        raise GanlabError(
            f"cannot read the classifier cache {path} ({err}); delete it to retrain"
        ) from None
    return model.eval(), float(record["accuracy"])


def load_or_train_classifier(
    cfg_data: DictConfig, datamodule: Any, cache_dir: str | Path
) -> tuple[SmallCNN, float, Path]:
    """The classifier of a set-up datamodule's data: loaded from `cache_dir`, else trained and saved.

    The cache file is named by the data set (`datamodule.name`, else `cfg_data.name`) and the
    image shape.
    """
    x_train, y_train = datamodule.tensors("train")
    x_test, y_test = datamodule.tensors("test")
    name = getattr(datamodule, "name", None) or cfg_data.get("name") or "data"
    if y_train is None or y_test is None:
        raise GanlabError(
            f"data={name} has no labels, so the classifier cannot be trained; "
            "use the inception feature network for it"
        )
    if x_train.dim() != 4 or min(x_train.shape[-2:]) < 8:
        raise GanlabError(
            f"the classifier needs images (N, C, H, W) of size >= 8 but data={name} gives "
            f"{tuple(x_train.shape[1:])}; use it on image data only"
        )
    c, h, w = x_train.shape[1:]
    path = Path(cache_dir) / f"classifier-{name}-{c}x{h}x{w}.pt"
    if path.exists():
        model, accuracy = load_classifier(path)
        return model, accuracy, path
    model, accuracy = train_classifier(x_train, y_train, x_test, y_test)
    save_classifier(model, path, accuracy, name)
    return model.cpu().eval(), accuracy, path


@dataclass
class ClassifierArgs:
    data: str = arg(help="the data set, a config of conf/data (e.g. digits)", metavar="NAME")
    data_dir: str = arg("data", "data and caches; the classifier is cached in DIR/classifiers")
    config_dir: str = arg("conf", "the config folder whose train.yaml is composed")
    overrides: list[str] = arg([], "more overrides of the config, like [data.image_size=28]")


def run_classifier(args: ClassifierArgs) -> int:
    """The command's body: load or train the data set's classifier, print its accuracy."""
    config_dir = Path(args.config_dir).expanduser().resolve()
    if not (config_dir / "train.yaml").is_file():
        raise GanlabError(
            f"no train.yaml in {config_dir}; run from the repository root or pass config_dir=DIR"
        )
    import ganlab.schema  # noqa: F401 - registers the structured configs train.yaml extends

    overrides = [f"data={args.data}", f"paths.data_dir={args.data_dir}", *args.overrides]
    try:
        with hydra.initialize_config_dir(str(config_dir), version_base="1.3"):
            cfg = hydra.compose("train", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:  # e.g. no such data config
        message = str(err).split("Config search path")[0]  # where Hydra looked: noise here
        raise GanlabError(" ".join(message.split())) from None
    try:
        datamodule = hydra.utils.instantiate(cfg.data)
    except InstantiationException as err:  # the data module's own check of its options
        cause: BaseException = err
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        raise GanlabError(f"data: {' '.join(str(cause).split())}") from None
    datamodule.setup()
    start = time.perf_counter()
    _, accuracy, path = load_or_train_classifier(
        cfg.data, datamodule, Path(cfg.paths.data_dir) / "classifiers"
    )
    print(f"held-out accuracy {accuracy:.4f} ({time.perf_counter() - start:.1f} s)")
    print(f"classifier: {path.resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(
        ClassifierArgs,
        run_classifier,
        argv,
        prog="python -m ganlab.classifier",
        summary="Train the metrics classifier of a data set (or load it from its cache) and\n"
        "print its held-out accuracy; composes the training config, as train.py does.",
    )


if __name__ == "__main__":
    sys.exit(main())
