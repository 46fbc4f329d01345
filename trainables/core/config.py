"""The training configuration: one flat JSON object, shared by search, export and train.

A config is a plain ``dict`` validated against :data:`FIELDS`. Keeping it flat
makes every hyperparameter a single Optuna parameter, a single MLflow param and
a single column of the trials table. The search exports exactly this format and
``python -m trainables.train`` reads it back unchanged.

Keys that are not hyperparameters: ``provenance`` (free-form dict written by the
exporter: experiment, trial id, score...) is accepted and carried along.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FIELDS", "ConfigError", "default_config", "validate_config", "load_config", "save_config"]


class ConfigError(ValueError):
    """A configuration that cannot be trained; the message names the key."""


@dataclass(frozen=True)
class Field:
    types: tuple
    default: Any
    choices: tuple | None = None
    help: str = ""


_NUM = (int, float)
FIELDS: dict[str, Field] = {
    # what is fitted: a network trained end to end, a ridge readout of fixed features, or an ideal observer
    # (each image predicted by its object's or category's mean training response: no pixels at all)
    "model": Field((str,), "network", ("network", "ridge", "lookup")),
    "lookup_by": Field((str,), "object", ("object", "category"), help="lookup: the label images are looked up by"),
    # ridge readouts
    "layer": Field((str,), "pixels", help="ridge: 'pixels' or a layer of the backbone (trainables.fitting.features.layer_names)"),
    "feature_pool": Field((int,), 1, help="ridge: adaptive average pool side of the layer's map; 0: flatten"),
    "pca_components": Field((int,), 0, help="ridge: PCA components fitted on the training fold; 0: none"),
    "alpha": Field((int, float, type(None)), None, help="ridge: regularisation; null: cross-validated; 0: least squares"),
    "alpha_per_site": Field((bool,), False, help="ridge: one cross-validated alpha per site"),
    "cv_folds": Field((int,), 5, help="ridge: object-stratified folds for alpha"),
    # network
    "backbone": Field((str,), "shallow_cnn", help="name in trainables.models.backbones.BACKBONES"),
    "weights": Field((str,), "random", ("random", "imagenet")),
    "trainable_blocks": Field(
        (int, type(None)), None, help="null: fine-tune all; 0: frozen; n: only the last n blocks"
    ),
    "vgg_blocks": Field((int,), 5, help="vgg11_bn: keep the first k conv blocks (1..8)"),
    "trunk_layer": Field(
        (str,), "avgpool", help="network: cut the trunk after this layer (trainables.fitting.features.layer_names); "
        "avgpool: keep it whole"
    ),
    "input_size": Field(
        (int,), 0, help="network / layer readout: resize the images to this side before the trunk (the scale at "
        "which a pretrained network sees them); 0: as stored"
    ),
    "width_mult": Field(_NUM, 1.0, help="shallow_cnn: channel multiplier of 16-32-64-128"),
    "head": Field((str,), "mlp", ("mlp", "factorized"), help="decoder head: trainables.models.heads.HEADS"),
    "head_pool": Field((int,), 1, help="adaptive average pool output size (p x p)"),
    "head_hidden": Field(
        (list,), [], help="mlp: hidden widths of the MLP; factorized: widths of the 1 x 1 convolutions before it"
    ),
    "head_dropout": Field(_NUM, 0.0),
    "head_activation": Field((str,), "relu", ("relu", "gelu", "elu", "silu")),
    # optimisation
    "optimizer": Field((str,), "adamw", ("adam", "adamw", "sgd")),
    "lr": Field(_NUM, 1e-3),
    "weight_decay": Field(_NUM, 0.0),
    "momentum": Field(_NUM, 0.9, help="sgd only"),
    "scheduler": Field((str,), "none", ("none", "step", "cosine", "plateau")),
    "step_size": Field((int,), 15, help="step: epochs between decays"),
    "gamma": Field(_NUM, 0.5, help="step / plateau: decay factor"),
    "epochs": Field((int,), 30),
    "batch_size": Field((int,), 64),
    "patience": Field((int, type(None)), 10, help="early stopping on inner-val EV; null: off"),
    "seed": Field((int,), 0),
    # selection split
    "inner_val_fraction": Field(_NUM, 0.1),
    "split_seed": Field((int,), 0),
}

EXTRA_KEYS = ("provenance",)
MIN_INPUT_SIZE = 32  # the deep trunks downsample 32-fold


def default_config() -> dict:
    """A complete config with every field at its default."""
    return {name: (list(f.default) if isinstance(f.default, list) else f.default) for name, f in FIELDS.items()}


def _check_value(name: str, value: Any) -> None:
    field = FIELDS[name]
    # bool is an int in Python; a flag set to true where a number is expected is a mistake.
    if (isinstance(value, bool) and bool not in field.types) or not isinstance(value, field.types):
        names = "/".join("null" if t is type(None) else t.__name__ for t in field.types)
        raise ConfigError(f"config key '{name}': expected {names}, got {value!r}")
    if field.choices and value not in field.choices:
        raise ConfigError(f"config key '{name}': {value!r} is not one of {', '.join(field.choices)}")


def validate_config(config: dict) -> dict:
    """Check a config and fill in defaults.

    Parameters
    ----------
    config : dict
        Partial or complete config.

    Returns
    -------
    dict
        A new, complete config.

    Raises
    ------
    ConfigError
        Unknown key, wrong type, value out of range; the message names the key.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a JSON object, got {type(config).__name__}")
    unknown = sorted(set(config) - set(FIELDS) - set(EXTRA_KEYS))
    if unknown:
        raise ConfigError(f"unknown config key '{unknown[0]}' (valid keys: {', '.join(FIELDS)})")
    full = default_config()
    full.update(config)
    for name in FIELDS:
        _check_value(name, full[name])
    if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in full["head_hidden"]):
        raise ConfigError(f"config key 'head_hidden': expected a list of positive ints, got {full['head_hidden']!r}")
    positive = ("lr", "epochs", "batch_size", "width_mult", "head_pool", "step_size")
    for name in positive:
        if full[name] <= 0:
            raise ConfigError(f"config key '{name}': must be > 0, got {full[name]!r}")
    if not 0.0 <= full["head_dropout"] < 1.0:
        raise ConfigError(f"config key 'head_dropout': must be in [0, 1), got {full['head_dropout']!r}")
    if not 0.0 < full["inner_val_fraction"] < 0.5:
        raise ConfigError(f"config key 'inner_val_fraction': must be in (0, 0.5), got {full['inner_val_fraction']!r}")
    if full["weight_decay"] < 0:
        raise ConfigError(f"config key 'weight_decay': must be >= 0, got {full['weight_decay']!r}")
    if not 1 <= full["vgg_blocks"] <= 8:
        raise ConfigError(f"config key 'vgg_blocks': must be in 1..8, got {full['vgg_blocks']!r}")
    for name in ("feature_pool", "pca_components"):
        if full[name] < 0:
            raise ConfigError(f"config key '{name}': must be >= 0, got {full[name]!r}")
    if full["input_size"] != 0 and full["input_size"] < MIN_INPUT_SIZE:
        raise ConfigError(f"config key 'input_size': must be 0 (as stored) or >= {MIN_INPUT_SIZE}, "
                          f"got {full['input_size']!r}")
    if full["alpha"] is not None and full["alpha"] < 0:
        raise ConfigError(f"config key 'alpha': must be null or >= 0, got {full['alpha']!r}")
    if full["cv_folds"] < 2:
        raise ConfigError(f"config key 'cv_folds': must be >= 2, got {full['cv_folds']!r}")
    if full["trainable_blocks"] is not None and full["trainable_blocks"] < 0:
        raise ConfigError(f"config key 'trainable_blocks': must be null or >= 0, got {full['trainable_blocks']!r}")
    return full


def uses_backbone(config: dict) -> bool:
    """Whether the config runs its backbone (a network, or a readout of one of its layers; not pixels, not a lookup)."""
    return config["model"] == "network" or (config["model"] == "ridge" and config["layer"] != "pixels")


def hyperparameters(config: dict) -> dict:
    """The config without the non-hyperparameter keys (``provenance``, a trial's sampling helpers)."""
    return {k: v for k, v in config.items() if k in FIELDS}


def from_trial(trial_config: dict) -> dict:
    """The validated training config inside a search trial's config (sampling helpers and bookkeeping dropped)."""
    return validate_config(hyperparameters(trial_config))


def load_config(path: str | Path) -> dict:
    """Read and validate a JSON config file.

    Raises
    ------
    ConfigError
        Unreadable file, invalid JSON, or an invalid config.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"config file {path} is not valid JSON: {err.msg} (line {err.lineno})") from None
    return validate_config(raw)


def save_config(config: dict, path: str | Path) -> None:
    """Write a config as indented JSON (validated first)."""
    full = validate_config(config)
    Path(path).write_text(json.dumps(full, indent=2, sort_keys=False) + "\n")
