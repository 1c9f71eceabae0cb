"""Data modules: batches, determinism, resuming, loading from files, errors and the data configs."""

from __future__ import annotations

import io
import json
import logging
import socket
import struct
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf.errors import MissingMandatoryValue
from PIL import Image
from torchvision.transforms import functional as TF

from ganlab.data import (
    DigitsDataModule,
    GanDataModule,
    Grid,
    ImageFolderDataModule,
    Ring,
    TorchvisionDataModule,
)
from ganlab.data.images import format_images
from ganlab.errors import GanlabError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def take(data: GanDataModule, k: int, it=None) -> list:
    it = it if it is not None else iter(data.train_dataloader())
    return [next(it) for _ in range(k)]


def assert_same_batches(a: list, b: list) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb)
        assert (ya is None and yb is None) or torch.equal(ya, yb)


def checkpoint_roundtrip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list:
    """Refuse every connection, recording the attempts."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


# Gaussian mixtures


@pytest.mark.parametrize("cls", [Ring, Grid])
def test_mixture_batches_lie_near_the_modes(cls: type) -> None:
    data = cls(batch_size=256, seed=0)
    x, y = take(data, 1)[0]
    assert x.shape == (256, 2) and x.dtype == torch.float32 and y is None
    assert data.num_classes is None
    assert x.abs().max() < 1  # inside the generator's tanh range

    points = data.denormalize(torch.cat([x for x, _ in take(data, 20)]))
    distances = torch.cdist(points, data.centers)
    nearest = distances.min(dim=1)
    assert nearest.values.max() < 6 * data.std
    assert nearest.indices.unique().numel() == len(data.centers)


def test_mixture_centers() -> None:
    ring = Ring(batch_size=8)
    assert ring.centers.shape == (8, 2)
    assert torch.allclose(ring.centers[0], torch.tensor([2.0, 0.0]))
    assert torch.allclose(ring.centers.norm(dim=1), torch.full((8,), 2.0))
    ticks = {-4.0, -2.0, 0.0, 2.0, 4.0}
    grid = {tuple(c) for c in Grid(batch_size=8).centers.tolist()}
    assert grid == {(a, b) for a in ticks for b in ticks}


def test_mixture_batches_per_step_and_seed() -> None:
    data = Ring(batch_size=16, seed=3)
    data.batches_per_step = 5
    assert take(data, 1)[0][0].shape == (80, 2)
    assert_same_batches(take(Ring(batch_size=16, seed=3), 3), take(Ring(batch_size=16, seed=3), 3))
    assert not torch.equal(take(Ring(batch_size=16, seed=4), 1)[0][0], take(data, 1)[0][0][:16])


def test_mixture_eval_tensors_are_fixed_samples() -> None:
    train, labels = Grid(batch_size=8, seed=0).tensors("train")
    test, _ = Grid(batch_size=8, seed=0).tensors("test")
    assert train.shape == test.shape == (10_000, 2) and labels is None
    assert torch.equal(train, Grid(batch_size=8, seed=1).tensors("train")[0])
    assert not torch.equal(train, test)


def test_mixture_resume_continues_the_stream() -> None:
    data = Ring(batch_size=32, seed=1)
    it = iter(data.train_dataloader())
    take(data, 3, it)
    state = checkpoint_roundtrip(data.state_dict())
    expected = take(data, 4, it)

    resumed = Ring(batch_size=32, seed=1)
    resumed.load_state_dict(state)
    assert_same_batches(take(resumed, 4), expected)


class _Recorder(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch[0].clone())
        return self.weight * batch[0].mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_resume_from_a_lightning_checkpoint_skips_no_batch(tmp_path: Path) -> None:
    def fit(max_steps: int, ckpt_path: Path | None = None) -> tuple[_Recorder, L.Trainer]:
        model = _Recorder()
        trainer = L.Trainer(
            max_steps=max_steps,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp_path,
        )
        trainer.fit(model, datamodule=Ring(batch_size=4, seed=5), ckpt_path=ckpt_path)
        return model, trainer

    uninterrupted, _ = fit(5)
    _, first = fit(2)
    first.save_checkpoint(tmp_path / "last.ckpt")
    resumed, _ = fit(5, tmp_path / "last.ckpt")
    assert len(resumed.seen) == 3
    for a, b in zip(resumed.seen, uninterrupted.seen[2:], strict=True):
        assert torch.equal(a, b)


# Digits


def test_digits_batches_and_split() -> None:
    data = DigitsDataModule(batch_size=64, seed=0)
    data.batches_per_step = 2
    x, y = take(data, 1)[0]
    assert x.shape == (128, 1, 32, 32) and x.dtype == torch.float32
    assert y.shape == (128,) and y.dtype == torch.int64
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1 and x.max() == 1
    assert data.num_classes == 10

    train_x, train_y = data.tensors("train")
    test_x, test_y = data.tensors("test")
    assert train_x.shape == (1437, 1, 32, 32) and test_x.shape == (360, 1, 32, 32)
    assert train_x.dtype == torch.float32 and train_y.dtype == torch.int64
    assert set(test_y.tolist()) == set(range(10))
    assert test_y.bincount().min() >= 35  # stratified: ~36 per class
    assert data.denormalize(x) is x


def test_digits_rgb_repeats_gray() -> None:
    data = DigitsDataModule(batch_size=8, image_size=16, channels=3)
    x, _ = take(data, 1)[0]
    assert x.shape == (8, 3, 16, 16)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])


def test_digits_pass_is_a_permutation_of_the_train_split() -> None:
    data = DigitsDataModule(batch_size=479, seed=2)  # 3 * 479 = 1437: one pass, no tail
    batches = take(data, 3)
    seen_x = torch.cat([x for x, _ in batches])
    seen_y = torch.cat([y for _, y in batches])
    train_x, train_y = data.tensors("train")
    assert torch.equal(seen_y.bincount(), train_y.bincount())
    assert torch.allclose(seen_x.sum(0), train_x.sum(0), atol=1e-2)


def test_digits_order_is_seeded() -> None:
    assert_same_batches(take(DigitsDataModule(seed=7), 2), take(DigitsDataModule(seed=7), 2))
    assert not torch.equal(
        take(DigitsDataModule(seed=8), 1)[0][1], take(DigitsDataModule(seed=7), 1)[0][1]
    )


@pytest.mark.parametrize("consumed", [0, 2, 3])  # fresh, inside a pass, at a pass boundary
def test_digits_resume_continues_the_order(consumed: int) -> None:
    data = DigitsDataModule(batch_size=400, seed=1)  # 3 batches per pass, 237 dropped
    it = iter(data.train_dataloader())
    take(data, consumed, it)
    state = checkpoint_roundtrip(data.state_dict())
    expected = take(data, 5, it)

    resumed = DigitsDataModule(batch_size=400, seed=1)
    resumed.load_state_dict(state)
    assert_same_batches(take(resumed, 5), expected)


@pytest.mark.parametrize("cls", [Ring, DigitsDataModule])
def test_batches_are_drawn_on_the_trainer_device(cls: type) -> None:
    data = cls(batch_size=8)
    # The meta device fails on any op that mixes it with CPU tensors.
    meta = torch.device("meta")
    data.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=meta), training=False,
                                   global_rank=0, world_size=1)
    x, y = take(data, 1)[0]
    assert x.device == meta and (y is None or y.device == meta)
    assert data.tensors()[0].device == torch.device("cpu")


@pytest.mark.parametrize("cls", [DigitsDataModule, Ring])
def test_ranks_take_disjoint_parts_of_one_draw(cls: type) -> None:
    # Under DDP every rank follows the same sampler and keeps its own part of the draw:
    # together, the ranks see what one process with the whole batch sees.
    cpu = SimpleNamespace(root_device=torch.device("cpu"))
    ranks = []
    for rank in (0, 1):
        data = cls(batch_size=8)
        data.trainer = SimpleNamespace(strategy=cpu, training=False, global_rank=rank,
                                       world_size=2)
        ranks.append(take(data, 3))
    whole = take(cls(batch_size=16), 3)
    for (x0, y0), (x1, y1), (x, y) in zip(*ranks, whole, strict=True):
        assert x0.shape[0] == x1.shape[0] == 8
        assert torch.equal(torch.cat([x0, x1]), x)
        assert y is None or torch.equal(torch.cat([y0, y1]), y)


def test_batch_larger_than_the_data_set() -> None:
    data = DigitsDataModule(batch_size=1000)
    data.batches_per_step = 2
    with pytest.raises(GanlabError) as excinfo:
        take(data, 1)
    message = one_line_error(excinfo)
    assert "2000" in message and "1437" in message


def test_shape_mismatch_and_unknown_split() -> None:
    data = DigitsDataModule(shape=[1, 28, 28])
    with pytest.raises(GanlabError) as excinfo:
        data.setup()
    assert "[1, 28, 28]" in one_line_error(excinfo) and "[1, 32, 32]" in str(excinfo.value)
    with pytest.raises(GanlabError, match="'val'"):
        DigitsDataModule().tensors("val")


# torchvision data sets


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    header = struct.pack(">IIII", 2051, n, h, w)
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", 2049, n) + labels.tobytes()
    )


def fake_mnist(root: Path, folder_name: str, n_train: int = 12, n_test: int = 5) -> np.ndarray:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    raw = root / folder_name / "raw"
    write_idx(raw, "train", train, (np.arange(n_train) % 10).astype(np.uint8))
    write_idx(
        raw,
        "t10k",
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        np.zeros(n_test, np.uint8),
    )
    return train


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_mnist_like_from_idx_files(
    tmp_path: Path, no_network: list, name: str, folder: str
) -> None:
    train = fake_mnist(tmp_path, folder)

    data = TorchvisionDataModule(name, str(tmp_path), download=True, batch_size=4)
    x, y = take(data, 1)[0]
    assert x.shape == (4, 1, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert y.dtype == torch.int64
    assert data.tensors("test")[0].shape == (5, 1, 32, 32)

    exact = TorchvisionDataModule(name, str(tmp_path), image_size=28, channels=3, batch_size=4)
    images, labels = exact.tensors("train")
    assert images.shape == (12, 3, 28, 28)
    assert torch.equal(
        ((images[:, 0] + 1) * 127.5).round().to(torch.uint8), torch.from_numpy(train)
    )
    assert labels.tolist() == [i % 10 for i in range(12)]
    assert no_network == []


def test_missing_mnist_without_download(tmp_path: Path, no_network: list) -> None:
    data = TorchvisionDataModule("mnist", str(tmp_path), download=False)
    with pytest.raises(GanlabError) as excinfo:
        data.setup()
    message = one_line_error(excinfo)
    assert str(tmp_path / "MNIST" / "raw") in message
    for file in ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]:
        assert file in message
    assert no_network == []


def test_missing_mnist_offline_download(tmp_path: Path, no_network: list) -> None:
    data = TorchvisionDataModule("fashion_mnist", str(tmp_path), download=True)
    with pytest.raises(GanlabError) as excinfo:
        data.setup()
    message = one_line_error(excinfo)
    assert str(tmp_path / "FashionMNIST" / "raw") in message and "download failed" in message
    assert no_network  # it did try


def test_missing_cifar10_without_download(tmp_path: Path) -> None:
    data = TorchvisionDataModule("cifar10", str(tmp_path), download=False)
    assert data.shape == [3, 32, 32]
    with pytest.raises(GanlabError) as excinfo:
        data.setup()
    message = one_line_error(excinfo)
    assert str(tmp_path / "cifar-10-batches-py") in message and "data_batch_1" in message


def test_rgb_to_gray_uses_itu_601_luma() -> None:
    rgb = torch.randint(
        0, 256, (4, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    gray = format_images(rgb, image_size=8, channels=1)
    pil_gray = torch.stack([TF.pil_to_tensor(TF.to_pil_image(image).convert("L")) for image in rgb])
    assert gray.shape == (4, 1, 8, 8) and gray.dtype == torch.uint8
    assert (gray.int() - pil_gray.int()).abs().max() <= 1


def test_unknown_torchvision_name(tmp_path: Path) -> None:
    with pytest.raises(GanlabError, match="'svhn'"):
        TorchvisionDataModule("svhn", str(tmp_path))


# Image folders


def write_images(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    Image.new("L", (40, 30), 100).save(root / "a" / "gray.png")
    Image.new("RGB", (20, 50), (255, 0, 0)).save(root / "a" / "b" / "red.jpg", quality=95)
    Image.new("RGB", (64, 64), (0, 0, 255)).save(root / "blue.PNG")
    (root / "notes.txt").write_text("not an image")


def test_image_folder_loads_nested_images(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_images(tmp_path)
    data = ImageFolderDataModule(str(tmp_path), image_size=16, channels=3, batch_size=2)
    with caplog.at_level(logging.INFO):
        x, y = take(data, 1)[0]
    assert x.shape == (2, 3, 16, 16) and y is None and data.num_classes is None
    assert f"image_folder: loaded 3 images from {tmp_path}" in caplog.text

    images, _ = data.tensors("train")
    red, gray, blue = images  # sorted by path: a/b/red.jpg, a/gray.png, blue.PNG
    assert torch.allclose(gray, torch.full_like(gray, 100 / 127.5 - 1), atol=0.02)
    assert torch.allclose(red[0], torch.ones(16, 16), atol=0.03)
    assert torch.allclose(red[1:], -torch.ones(2, 16, 16), atol=0.03)
    assert torch.allclose(blue[2], torch.ones(16, 16))
    assert torch.equal(data.tensors("test")[0], images)

    gray_data = ImageFolderDataModule(str(tmp_path), image_size=8, channels=1)
    assert gray_data.tensors()[0].shape == (3, 1, 8, 8)


def test_image_folder_errors(tmp_path: Path) -> None:
    def error(path: Path) -> str:
        with pytest.raises(GanlabError) as excinfo:
            ImageFolderDataModule(str(path)).setup()
        message = one_line_error(excinfo)
        assert str(path) in message
        return message

    error(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"")
    error(tmp_path / "file.png")

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    assert ".png" in error(empty) and ".webp" in error(empty)

    # An unreadable file is skipped (and listed in the cache's report), or with on_bad=fail
    # stops the run naming it.
    broken = tmp_path / "broken"
    broken.mkdir()
    Image.new("RGB", (8, 8)).save(broken / "good.png")
    (broken / "bad.jpg").write_bytes(b"not a jpeg")
    data = ImageFolderDataModule(str(broken), image_size=8, cache_dir=str(tmp_path / "cache"))
    assert data.tensors()[0].shape == (1, 3, 8, 8)
    (report,) = (tmp_path / "cache").glob("*.report.json")
    assert [f["file"] for f in json.loads(report.read_text())["skipped_files"]] == ["bad.jpg"]
    with pytest.raises(GanlabError) as excinfo:
        ImageFolderDataModule(str(broken), on_bad="fail").setup()
    assert "bad.jpg not an image" in one_line_error(excinfo)


def test_image_folder_labels_from_class_folders(tmp_path: Path) -> None:
    for name, value in (("b_dogs", 200), ("a_cats", 50)):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.new("L", (12, 12), value + i).save(tmp_path / name / f"{i}.png")
    data = ImageFolderDataModule(str(tmp_path), image_size=8, channels=1, labels="folders",
                                 num_classes=2)
    x, y = data.tensors()
    assert y.tolist() == [0, 0, 1, 1] and data.class_names == ["a_cats", "b_dogs"]
    assert ((x[:, 0, 0, 0] + 1) * 127.5).round().tolist() == [50, 51, 200, 201]
    with pytest.raises(GanlabError, match="has 2 class folders; set data.num_classes=2"):
        ImageFolderDataModule(str(tmp_path), labels="folders", num_classes=3).setup()
    with pytest.raises(GanlabError, match="data.labels=folders needs data.num_classes"):
        ImageFolderDataModule(str(tmp_path), labels="folders")


def test_image_folder_cache_is_reused_and_an_edit_prepares_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, cache = tmp_path / "images", tmp_path / "cache"
    write_images(folder)

    def load() -> torch.Tensor:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            return ImageFolderDataModule(str(folder), image_size=8, cache_dir=str(cache)).tensors()[0]

    first = load()
    assert "reading its prepared cache" not in caplog.text
    (cached,) = cache.glob("*.zip")
    assert torch.equal(load(), first) and "reading its prepared cache" in caplog.text
    Image.new("RGB", (64, 64), (0, 255, 0)).save(folder / "blue.PNG")  # edited in place
    edited = load()
    assert "reading its prepared cache" not in caplog.text
    assert torch.equal(edited[:2], first[:2]) and not torch.equal(edited[2], first[2])
    assert torch.allclose(edited[2, 1], torch.ones(8, 8))  # green now
    (again,) = cache.glob("*.zip")  # the stale cache was removed
    assert again != cached
    ImageFolderDataModule(str(folder), image_size=16, cache_dir=str(cache)).setup()
    assert len(list(cache.glob("*.zip"))) == 1  # other size options: another key


# The data configs


def compose_data(tmp_path: Path, option: str, *overrides: str):
    """The root config as Hydra composes it with `data=<option>`."""
    config_dir = tmp_path / "conf"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "root.yaml").write_text(
        "defaults:\n  - data: ring8\n  - _self_\n"
        f"seed: 3\npaths:\n  data_dir: {tmp_path / 'datasets'}\n"
        f"hydra:\n  searchpath:\n    - file://{CONF_DIR}\n"
    )
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose("root", overrides=[f"data={option}", *overrides])


@pytest.mark.parametrize(
    ("option", "cls", "batch_size", "shape", "num_classes"),
    [
        ("ring8", Ring, 256, [2], None),
        ("grid25", Grid, 256, [2], None),
        ("digits", DigitsDataModule, 64, [1, 32, 32], 10),
        ("mnist", TorchvisionDataModule, 64, [1, 32, 32], 10),
        ("fashion_mnist", TorchvisionDataModule, 64, [1, 32, 32], 10),
        ("cifar10", TorchvisionDataModule, 64, [3, 32, 32], 10),
        ("image_folder", ImageFolderDataModule, 64, [3, 64, 64], None),
    ],
)
def test_data_configs_instantiate(
    tmp_path: Path, option, cls, batch_size, shape, num_classes
) -> None:
    overrides = [f"data.path={tmp_path}"] if option == "image_folder" else []
    cfg = compose_data(tmp_path, option, *overrides)
    assert list(cfg.data.shape) == shape
    data = instantiate(cfg.data)
    assert type(data) is cls
    assert (data.batch_size, data.shape, data.num_classes, data.seed) == (
        batch_size,
        shape,
        num_classes,
        3,
    )
    if cls is TorchvisionDataModule:
        assert data.root == str(tmp_path / "datasets") and data.download


def test_data_configs_defaults_match_the_classes(tmp_path: Path) -> None:
    ring = instantiate(compose_data(tmp_path, "ring8").data)
    assert (ring.std, ring.scale, len(ring.centers)) == (0.02, 2.5, 8)
    grid = instantiate(compose_data(tmp_path, "grid25").data)
    assert (grid.std, grid.scale, len(grid.centers)) == (0.05, 5.0, 25)

    digits = instantiate(
        compose_data(tmp_path, "digits", "data.image_size=16", "data.channels=3").data
    )
    assert take(digits, 1)[0][0].shape == (64, 3, 16, 16)

    with pytest.raises(MissingMandatoryValue):
        instantiate(compose_data(tmp_path, "image_folder").data)
