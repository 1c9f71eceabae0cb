"""Checks on the composed config that fail fast, before any data is loaded or work done.

Hydra already rejects unknown group options and keys; these checks catch values of the
right type but out of range, and model/data combinations that cannot work. Each failure
is one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganlab.divergence import MODES
from ganlab.errors import GanlabError


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise GanlabError(f"{key}={value!r} is not allowed: {allowed}")


Rule = tuple[Callable[[Any], bool], str]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


INT_1: Rule = (lambda v: _is_int(v) and v >= 1, "it must be an integer >= 1")
INT_0: Rule = (lambda v: _is_int(v) and v >= 0, "it must be an integer >= 0 (0: never)")
POSITIVE: Rule = (lambda v: _is_number(v) and v > 0, "it must be a number > 0")
NON_NEGATIVE: Rule = (lambda v: _is_number(v) and v >= 0, "it must be a number >= 0")
FRACTION: Rule = (lambda v: _is_number(v) and 0 <= v < 1, "it must be a number in [0, 1)")
BOOL: Rule = (lambda v: isinstance(v, bool), "it must be true or false")
SEED: Rule = (lambda v: _is_int(v) and 0 <= v < 2**32, "it must be an integer in [0, 2**32)")
NULL_OR_POSITIVE: Rule = (lambda v: v is None or POSITIVE[0](v), "it must be null or a number > 0")
NULL_OR_INT_1: Rule = (lambda v: v is None or INT_1[0](v), "it must be null or an integer >= 1")
SIZES: Rule = (
    lambda v: (
        isinstance(v, list | tuple | ListConfig) and len(v) > 0 and all(INT_1[0](s) for s in v)
    ),
    "it must be a non-empty list of integers >= 1",
)

# Every numeric (and boolean) option that the shipped configs have; a key that the
# composed config does not have (e.g. data.std with data=digits) is not checked.
RULES: dict[str, Rule] = {
    "seed": SEED,
    "n_critic": INT_1,
    "pack": INT_1,
    "on_nonfinite": (lambda v: v in MODES, f"it must be one of {', '.join(MODES)}"),
    "ckpt_path": (
        lambda v: v is None or (isinstance(v, str) and v != ""),
        "it must be null or a path",
    ),
    "trainer.max_steps": INT_1,
    "trainer.log_every_n_steps": INT_1,
    "trainer.deterministic": (
        lambda v: isinstance(v, bool) or v == "warn",
        "it must be true, false or warn",
    ),
    "trainer.benchmark": (
        lambda v: v is None or isinstance(v, bool),
        "it must be null, true or false",
    ),
    "trainer.enable_progress_bar": BOOL,
    "trainer.enable_model_summary": BOOL,
    "data.batch_size": INT_1,
    "data.image_size": INT_1,
    "data.channels": (lambda v: v in (1, 3) and _is_int(v), "images have 1 or 3 channels"),
    "data.shape": SIZES,
    "data.num_classes": NULL_OR_INT_1,
    "data.download": BOOL,
    "data.num_modes": INT_1,
    "data.grid_size": INT_1,
    "data.radius": POSITIVE,
    "data.spacing": POSITIVE,
    "data.std": POSITIVE,
    "data.scale": POSITIVE,
    "model.latent_dim": INT_1,
    "model.generator.width": INT_1,
    "model.discriminator.width": INT_1,
    "model.generator.hidden": SIZES,
    "model.discriminator.hidden": SIZES,
    "model.generator.negative_slope": NON_NEGATIVE,
    "model.discriminator.negative_slope": NON_NEGATIVE,
    "model.discriminator.dropout": FRACTION,
    "model.generator.batch_norm": BOOL,
    "model.compile": BOOL,
    "model.channels_last": BOOL,
    "model.discriminator.minibatch_std": INT_0,
    "model.truncation": NON_NEGATIVE,
    "model.generator.w_dim": INT_1,
    "model.generator.mapping_layers": INT_1,
    "model.generator.mapping_lr_mul": POSITIVE,
    "model.generator.channel_base": INT_1,
    "model.generator.channel_max": INT_1,
    "model.discriminator.channel_base": INT_1,
    "model.discriminator.channel_max": INT_1,
    "model.generator.mixing_prob": (
        lambda v: _is_number(v) and 0 <= v <= 1, "it must be a number in [0, 1]"
    ),
    "model.generator.w_avg_beta": FRACTION,
    "model.path_length.weight": NON_NEGATIVE,
    "model.path_length.interval": INT_1,
    "model.path_length.decay": (
        lambda v: _is_number(v) and 0 < v <= 1, "it must be a number in (0, 1]"
    ),
    "model.path_length.batch_shrink": INT_1,
    "model.generator.num_blocks": INT_0,
    "model.discriminator.num_layers": NULL_OR_INT_1,
    "model.module.lambda_cycle": NON_NEGATIVE,
    "model.module.lambda_identity": NON_NEGATIVE,
    "model.module.adversarial_weight": NON_NEGATIVE,
    "model.module.pool_size": INT_0,
    "lr_decay_start": (
        lambda v: v is None or (_is_number(v) and 0 <= v <= 1),
        "it must be null (the model's schedule) or a number in [0, 1] (1: no decay)",
    ),
    "model.module.lr_decay_start": (
        lambda v: _is_number(v) and 0 <= v <= 1,
        "it must be a number in [0, 1] (1: no decay)",
    ),
    "loss.clip": NULL_OR_POSITIVE,
    "loss.gp_weight": NON_NEGATIVE,
    "loss.label_smoothing": FRACTION,
    "loss.instance_noise": NON_NEGATIVE,
    "loss.noise_anneal_steps": INT_0,
    "regularizer.gamma": NON_NEGATIVE,
    "regularizer.weight": NON_NEGATIVE,
    "regularizer.interval": INT_1,
    "ema.half_life_kimg": NON_NEGATIVE,
    "data.num_samples": NULL_OR_INT_1,
    "evaluation.num_samples": (lambda v: _is_int(v) and v >= 2, "it must be an integer >= 2"),
    "evaluation.kid_subset_size": INT_1,
    "evaluation.precision_recall_k": INT_1,
}
# The same options in every optimizer node and every callback node.
OPTIMIZER_RULES: dict[str, Rule] = {
    "lr": POSITIVE,
    "eps": POSITIVE,
    "weight_decay": NON_NEGATIVE,
    "momentum": NON_NEGATIVE,
    "alpha": NON_NEGATIVE,
}
CALLBACK_RULES: dict[str, Rule] = {
    "every_n_steps": INT_0,
    "num_images": INT_1,
    "num_points": INT_1,
    "seed": SEED,
}
_ABSENT = object()


def _check(cfg: DictConfig, key: str, rule: Rule) -> None:
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT)
    except OmegaConfBaseException as err:  # e.g. an interpolation to a key that is not there
        raise GanlabError(f"{key}: {str(err).splitlines()[0]}") from None
    if value is _ABSENT:
        return
    if isinstance(value, ListConfig):
        value = list(value)
    ok, allowed = rule
    _require(ok(value), key, value, allowed)


def _missing(node: Any, prefix: str) -> str | None:
    """The first mandatory value (``???``) left unset under ``node``."""
    if not isinstance(node, DictConfig):
        return None
    for key in node:
        full = f"{prefix}.{key}" if prefix else str(key)
        if full == "hydra":  # Hydra fills in its own values later
            continue
        if OmegaConf.is_missing(node, key):
            return full
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            found = _missing(child, full)
            if found:
                return found
    return None


def _sample_shape(node: Any) -> list[Any] | None:
    """The sample shape a network config makes or takes: (C, H, W) for convnets."""
    if not isinstance(node, DictConfig):
        return None
    try:
        if "shape" in node:
            return list(node.shape)
        if "channels" in node and "image_size" in node:
            return [node.channels, node.image_size, node.image_size]
    except OmegaConfBaseException:  # e.g. ${data.channels} with data that has none
        return None
    return None


def validate(cfg: DictConfig) -> None:
    """Raise GanlabError on the first invalid value of a composed training config."""
    missing = _missing(cfg, "")
    if missing:
        raise GanlabError(f"{missing} is required but not set: pass {missing}=VALUE")
    for key, rule in RULES.items():
        _check(cfg, key, rule)
    for net in ("generator", "discriminator"):
        for key, rule in OPTIMIZER_RULES.items():
            _check(cfg, f"optimizer.{net}.{key}", rule)
        betas = OmegaConf.select(cfg, f"optimizer.{net}.betas")
        if betas is not None:
            ok = isinstance(betas, ListConfig) and len(betas) == 2
            ok = ok and all(FRACTION[0](b) for b in betas)
            value = list(betas) if isinstance(betas, ListConfig) else betas
            _require(ok, f"optimizer.{net}.betas", value, "it must be two numbers in [0, 1)")
    for name, node in (cfg.get("callbacks") or {}).items():
        for key, rule in CALLBACK_RULES.items():
            if isinstance(node, DictConfig) and key in node:
                _check(cfg, f"callbacks.{name}.{key}", rule)

    shape = list(cfg.data.shape)
    ev = cfg.get("evaluation")
    if ev and len(shape) == 3:  # image metrics: KID draws subsets of the generated samples
        n, subset = ev.get("num_samples", 2500), ev.get("kid_subset_size", 1000)
        if subset > n:
            raise GanlabError(
                f"evaluation.kid_subset_size={subset} is larger than evaluation.num_samples={n}"
                f"; set evaluation.kid_subset_size={n} or less, or evaluate more samples"
            )
    if cfg.model.get("name") == "cyclegan" or "path_a" in cfg.data:
        from ganlab.cyclegan import check_config

        check_config(cfg)
    generator = cfg.model.get("generator")
    if isinstance(generator, DictConfig) and "image_size" in generator and len(shape) != 3:
        raise GanlabError(
            f"model={cfg.model.get('name')} needs image data (C, H, W) but data gives samples "
            f"of shape {shape}; use model=mlp for 2-D points"
        )
    if cfg.model.get("name") in ("dcgan", "stylegan"):
        from ganlab.nets.dcgan import dcgan_layout
        from ganlab.nets.stylegan import stylegan_layout

        layout = dcgan_layout if cfg.model.name == "dcgan" else stylegan_layout
        for net in ("generator", "discriminator"):
            layout(cfg.model[net].get("image_size", shape[-1]))
    for net in ("generator", "discriminator"):
        made = _sample_shape(cfg.model.get(net))
        if made is not None and made != shape:
            raise GanlabError(
                f"model.{net} is configured for samples of shape {made} but the data has "
                f"shape {shape}; make model.{net}'s channels, image_size or shape match "
                "data.channels, data.image_size or data.shape (by default they follow the data)"
            )
    conditional = any(
        isinstance(cfg.model.get(net), DictConfig) and "num_classes" in cfg.model[net]
        for net in ("generator", "discriminator")
    )
    if conditional and cfg.model.get("name") in ("sngan", "stylegan", "cyclegan"):
        raise GanlabError(
            f"model={cfg.model.name} has no conditional variant; use conditioning=none, or a "
            "conditional model: mlp or dcgan"
        )
    _check_pack(cfg, conditional)
    for net in ("generator", "discriminator"):
        node = cfg.model.get(net)
        classes = node.get("num_classes") if isinstance(node, DictConfig) else None
        if isinstance(node, DictConfig) and "num_classes" in node and classes is None:
            raise GanlabError(
                f"a conditional model needs labelled data but {cfg.data.get('_target_', '?')} "
                "has data.num_classes=null; use digits, mnist, fashion_mnist or cifar10, or "
                "conditioning=none"
            )


def _check_pack(cfg: DictConfig, conditional: bool) -> None:
    """PacGAN packing: models whose D takes a feature or channel count, no labels (a packed
    group would mix several), a batch that splits into whole groups."""
    pack = cfg.get("pack", 1)
    if pack == 1:
        return
    model = cfg.model.get("name")
    if model not in ("mlp", "dcgan", "sngan"):
        raise GanlabError(f"pack={pack} is not supported by model={model}; use model=mlp, "
                          "dcgan or sngan, or pack=1")
    if conditional:
        raise GanlabError(f"pack={pack} has no conditional variant (a packed group would mix "
                          "labels); use conditioning=none or pack=1")
    if cfg.data.batch_size % pack:
        raise GanlabError(f"data.batch_size={cfg.data.batch_size} is not a multiple of "
                          f"pack={pack}; choose a batch size divisible by {pack}")
