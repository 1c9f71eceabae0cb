"""Scoring samples made anywhere (``python -m ganlab.evaluate samples=PATH data=NAME``):
an .npz written by ``ganlab.sample`` (or by another code base in its format) or a folder of
images, against a data set of conf/data, with the protocol of the training-time evaluation.

The data set and the evaluation settings come from the training config, composed with
Hydra's compose API from the repository's ``conf`` (or ``config_dir``) with ``data=NAME``,
``evaluation=NAME`` and any further overrides, exactly as ``python train.py`` would compose
them; so a number from here and one from a ganlab run are on one yardstick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganlab.errors import GanlabError

# The repository's conf/ (src/ganlab/../../conf) for an editable install or a checkout.
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def _options(conf: Path, group: str) -> list[str]:
    return sorted(p.stem for p in (conf / group).glob("*.yaml"))


def compose_run_config(config_dir: str | None, data: str, evaluation: str | None,
                       overrides: list[str], data_dir: str) -> Any:
    """The training config for ``data=NAME`` (and ``evaluation=NAME``, ``overrides``)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    import ganlab.schema  # noqa: F401 - the structured configs conf/train.yaml extends

    conf = Path(config_dir).expanduser().resolve() if config_dir else CONF_DIR
    if not (conf / "train.yaml").is_file():
        raise GanlabError(f"config_dir={conf} holds no train.yaml; pass config_dir=DIR, the "
                          "conf folder of a ganlab checkout")
    for group, name in (("data", data), ("evaluation", evaluation)):
        if name is not None and name not in _options(conf, group):
            raise GanlabError(f"{group}={name} is not allowed: it must be one of "
                              f"{', '.join(_options(conf, group))} (from {conf / group})")
    chosen = [f"data={data}", f"paths.data_dir={data_dir}"]
    chosen += [f"evaluation={evaluation}"] if evaluation else []
    try:
        with initialize_config_dir(str(conf), version_base="1.3"):
            return compose("train", overrides=[*chosen, *overrides])
    except (HydraException, OmegaConfBaseException) as err:
        first = str(err).strip().splitlines()[0]
        raise GanlabError(f"cannot compose the config with overrides={overrides}: {first}"
                          ) from None


def read_samples(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Samples (N, C, H, W) in [-1, 1] or points (N, 2), and labels or None, from an .npz
    (arrays ``samples`` and optional ``labels``) or a folder of images (uint8, no labels)."""
    if path.is_dir():
        return _read_folder(path), None
    if not path.is_file():
        raise GanlabError(f"samples={path}: no such file or folder")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:
        raise GanlabError(f"samples={path} cannot be read as an .npz ({err}); write it with "
                          "python -m ganlab.sample ... output=FILE.npz") from None
    if "samples" not in arrays:
        raise GanlabError(f"samples={path} holds no array 'samples' (it has "
                          f"{', '.join(arrays) or 'none'}); ganlab.sample writes one")
    x = arrays["samples"]
    if x.ndim not in (2, 4) or not np.issubdtype(x.dtype, np.floating):
        raise GanlabError(f"samples={path}: 'samples' is {x.dtype} of shape {list(x.shape)}; "
                          "it must be float images (N, C, H, W) in [-1, 1] or points (N, 2)")
    x = torch.from_numpy(x.astype(np.float32))
    if not torch.isfinite(x).all():
        raise GanlabError(f"samples={path} holds NaN or infinite values")
    if x.ndim == 4 and (x.min() < -1.001 or x.max() > 1.001):
        raise GanlabError(f"samples={path} holds values in [{x.min():.4g}, {x.max():.4g}]; "
                          "images must be in [-1, 1] (uint8 / 127.5 - 1), as ganlab.sample "
                          "writes them")
    labels = arrays.get("labels")
    if labels is not None:
        if labels.shape != (len(x),) or not np.issubdtype(labels.dtype, np.integer):
            raise GanlabError(f"samples={path}: 'labels' must be {len(x)} integers, one per "
                              "sample")
        labels = torch.from_numpy(labels.astype(np.int64))
    return x, labels


def _read_folder(folder: Path) -> torch.Tensor:
    """Every image under ``folder`` (sorted), as they are: no resizing, no cropping."""
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    from ganlab.data.images import to_model_space
    from ganlab.imagefiles import IMAGE_EXTENSIONS

    files = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise GanlabError(f"samples={folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    images = []
    for file in files:
        try:
            with Image.open(file) as image:
                gray = image.mode in ("1", "L", "LA", "I", "I;16", "F")
                images.append(pil_to_tensor(image.convert("L" if gray else "RGB")))
        except OSError as err:
            raise GanlabError(f"cannot read image {file} ({type(err).__name__})") from None
        if images[-1].shape != images[0].shape:
            raise GanlabError(f"samples={folder}: {file.name} is {_shape(images[-1].shape)} but "
                              f"{files[0].name} is {_shape(images[0].shape)}; all images must "
                              "have one size and channel count")
    return to_model_space(torch.stack(images))


def _shape(shape: Any) -> str:
    c, h, w = shape
    return f"{h}x{w} with {c} channel{'s' if c > 1 else ''}"


def check_fits(x: torch.Tensor, data_shape: list[int], where: str, data: str) -> None:
    """One line when the samples are not of the data's shape (never resized: a resize would
    be part of the protocol, and another code base's resize is not ganlab's)."""
    if list(x.shape[1:]) == list(data_shape):
        return
    if x.ndim == 4 and len(data_shape) == 3:
        raise GanlabError(f"samples={where} holds images of {_shape(x.shape[1:])} but data={data} "
                          f"has images of {_shape(data_shape)}; make samples of the data's size "
                          "and channels, or set data.image_size / data.channels in overrides")
    raise GanlabError(f"samples={where} holds samples of shape {list(x.shape[1:])} but data={data}"
                      f" has samples of shape {list(data_shape)}")


def evaluate_samples(args: Any) -> tuple[dict[str, Any], Path]:
    """The metrics of ``args.samples`` against ``args.data`` and the file they go to."""
    from omegaconf import OmegaConf

    from ganlab.build import instantiate_node
    from ganlab.evaluation import build_evaluator
    from ganlab.metrics.reference import content_sha256

    cfg = compose_run_config(args.config_dir, args.data, args.evaluation, list(args.overrides),
                             args.data_dir)
    settings = OmegaConf.to_container(cfg.get("evaluation") or {}, resolve=True)
    if not settings:
        raise GanlabError("evaluation=none evaluates nothing; choose another evaluation")
    for key in ("feature_net", "weights_path"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    path = Path(args.samples).expanduser()
    x, labels = read_samples(path)
    datamodule = instantiate_node(cfg, "data")
    check_fits(x, datamodule.shape, args.samples, args.data)
    wanted = settings.get("num_samples", 2500) if args.num_samples is None else args.num_samples
    if isinstance(wanted, int) and len(x) < wanted:
        source = "num_samples" if args.num_samples is not None else "evaluation.num_samples"
        raise GanlabError(f"samples={args.samples} holds {len(x)} samples but {source} is "
                          f"{wanted}; pass num_samples={len(x)} to score all of them (the "
                          "protocol records how many), or make more")
    settings["num_samples"] = wanted
    datamodule.setup()
    evaluator = build_evaluator(settings, datamodule, args.data_dir, int(cfg.seed))
    if evaluator is None:
        raise GanlabError(f"no metric applies to data={args.data}; use feature_net=inception")
    x = x[:wanted]
    labels = None if labels is None else labels[:wanted]
    metrics = evaluator.score(lambda part: x[part], step=None, ema=None, labels=labels,
                        data_space=True)
    metrics |= {"protocol/samples": str(path), "protocol/samples_sha256": content_sha256(x)}
    out = path.with_suffix(".metrics.json") if path.is_file() else path.with_name(
        path.name + ".metrics.json")
    return metrics, out
