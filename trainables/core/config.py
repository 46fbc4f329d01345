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
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

class ConfigError(ValueError):
    """A configuration that cannot be trained; the message names the key."""


_UNSET = object()
_NUM = (int, float)


def _number(x: float | None) -> str | None:
    return None if x is None else str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Field:
    """One config key: its types, default, and the values it may take.

    Numbers must be finite and within the bounds ``ge`` / ``gt`` / ``le`` / ``lt``
    (for a list, each item); ``off`` is a value outside them that switches the feature
    off (``input_size`` 0: the images as stored); ``None`` is allowed where ``types``
    holds ``NoneType``.
    """

    types: tuple
    default: Any
    choices: tuple | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    off: Any = _UNSET
    help: str = ""

    def type_text(self) -> str:
        names = ["null" if t is type(None) else t.__name__ for t in self.types]
        if "int" in names and "float" in names:
            names[names.index("int")] = "number"
            names.remove("float")
        return "/".join(names)

    def range_text(self) -> str:
        """The allowed values in words: ``> 0``, ``0 to 8``, ``[0, 1)``, ``one of a, b``; empty when anything goes."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        low = _number(self.ge if self.ge is not None else self.gt)
        high = _number(self.le if self.le is not None else self.lt)
        if low is None and high is None:
            text = ""
        elif high is None:
            text = (">= " if self.ge is not None else "> ") + low
        elif low is None:
            text = ("<= " if self.le is not None else "< ") + high
        elif self.ge is not None and self.le is not None:
            text = f"{low} to {high}"
        else:
            text = ("[" if self.ge is not None else "(") + f"{low}, {high}" + ("]" if self.le is not None else ")")
        if self.off is not _UNSET and text:
            text = f"{self.off!r} (off) or {text}"
        return text

    def check(self, name: str, value: Any) -> None:
        """Raise ConfigError naming ``name`` when ``value`` has the wrong type or lies outside the allowed values."""
        # bool is an int in Python; a flag set to true where a number is expected is a mistake.
        if (isinstance(value, bool) and bool not in self.types) or not isinstance(value, self.types):
            raise ConfigError(f"config key '{name}': expected {self.type_text()}, got {value!r}")
        if self.choices and value not in self.choices:
            raise ConfigError(f"config key '{name}': {value!r} is not one of {', '.join(self.choices)}")
        if value is None or isinstance(value, (str, bool)) or (self.off is not _UNSET and value == self.off):
            return
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, _NUM) or isinstance(item, bool) or not math.isfinite(item) or not (
                    (self.ge is None or item >= self.ge) and (self.gt is None or item > self.gt)
                    and (self.le is None or item <= self.le) and (self.lt is None or item < self.lt)):
                what = "every item " if isinstance(value, list) else ""
                raise ConfigError(f"config key '{name}': {what}must be {self.range_text()}, got {value!r}")


_SEED = {"ge": 0, "le": 2**32 - 1}
FIELDS: dict[str, Field] = {
    # What is fitted: a family of trainables.fitting.families (a network trained end to end, a ridge readout of
    # fixed features, an ideal observer); the family checks the rest of the config.
    "model": Field((str,), "network", help="the model family"),
    "lookup_by": Field((str,), "object", ("object", "category"), help="lookup: the label images are looked up by"),
    # ridge readouts
    "layer": Field((str,), "pixels", help="ridge: 'pixels' or a layer of the backbone"),
    "feature_pool": Field((int,), 1, ge=0, le=64, help="ridge: pool side of the layer's map; 0: flatten"),
    "pca_components": Field((int,), 0, ge=0, le=100_000, help="ridge: PCA components; 0: none"),
    "alpha": Field((int, float, type(None)), None, ge=0, help="ridge: null: by CV; 0: least squares"),
    "alpha_per_site": Field((bool,), False, help="ridge: one cross-validated alpha per site"),
    "cv_folds": Field((int,), 5, ge=2, le=64, help="ridge: object-stratified folds for alpha"),
    # network
    "backbone": Field((str,), "shallow_cnn", help="a name in BACKBONES"),
    "weights": Field((str,), "random", ("random", "imagenet"), help="the backbone's initial weights"),
    "trainable_blocks": Field((int, type(None)), None, ge=0,
                              help="null: fine-tune all; 0: frozen; n: only the last n blocks"),
    "vgg_blocks": Field((int,), 5, ge=1, le=8, help="vgg11_bn: keep the first k conv blocks"),
    "trunk_layer": Field((str,), "avgpool", help="network: cut the trunk after this readout layer; avgpool: whole"),
    "input_size": Field((int,), 0, ge=32, le=1024, off=0,
                        help="resize the images to this side before the trunk (the scale a network sees)"),
    "width_mult": Field(_NUM, 1.0, gt=0, le=16, help="shallow_cnn: channel multiplier of 16-32-64-128"),
    "head": Field((str,), "mlp", ("mlp", "factorized"), help="decoder head"),
    "head_pool": Field((int,), 1, ge=1, le=32, help="pool side before the head"),
    "head_hidden": Field((list,), [], ge=1, le=65_536,
                         help="hidden widths (mlp) or 1 x 1 convolutions' widths (factorized)"),
    "head_dropout": Field(_NUM, 0.0, ge=0, lt=1, help="dropout after each hidden layer of the head"),
    "head_activation": Field((str,), "relu", ("relu", "gelu", "elu", "silu"), help="activation of the head's hidden layers"),
    # optimisation
    "optimizer": Field((str,), "adamw", ("adam", "adamw", "sgd"), help="Adam and AdamW are fused on a GPU"),
    "lr": Field(_NUM, 1e-3, gt=0, help="a rate that diverges fails its trial"),
    "weight_decay": Field(_NUM, 0.0, ge=0, le=10, help="L2 penalty (decoupled for AdamW)"),
    "momentum": Field(_NUM, 0.9, ge=0, lt=1, help="sgd only"),
    "scheduler": Field((str,), "none", ("none", "step", "cosine", "plateau"), help="learning-rate schedule"),
    "step_size": Field((int,), 15, ge=1, help="step: epochs between decays"),
    "gamma": Field(_NUM, 0.5, gt=0, lt=1, help="step / plateau: decay factor of the learning rate"),
    "epochs": Field((int,), 30, ge=1, le=100_000, help="at most this many (a profile may cap it)"),
    "batch_size": Field((int,), 64, ge=2, le=65_536, help="at least 2 (batch norm)"),
    "patience": Field((int, type(None)), 10, ge=1, help="epochs without a better inner EV before stopping; null: off"),
    "seed": Field((int,), 0, **_SEED, help="weights, batch order, dropout; CV folds"),
    # selection split
    "inner_val_fraction": Field(_NUM, 0.1, gt=0, lt=0.5,
                                help="share of each object's training images in the inner split"),
    "split_seed": Field((int,), 0, **_SEED, help="seed of the inner validation split"),
}

EXTRA_KEYS = ("provenance",)


def fields_table(choices: dict[str, list] | None = None) -> str:
    """The config keys as a Markdown table: key, type, default, allowed values, meaning (the README's table).

    ``choices``: allowed values of keys whose registry lives above this module (``model``: the families).
    """
    rows = ["| key | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    for name, f in FIELDS.items():
        allowed = ("one of " + ", ".join(choices[name])) if choices and name in choices else f.range_text()
        rows.append(f"| `{name}` | {f.type_text()} | `{json.dumps(f.default)}` | {allowed} | {f.help} |")
    return "\n".join(rows)


def default_config() -> dict:
    """A complete config with every field at its default."""
    return {name: (list(f.default) if isinstance(f.default, list) else f.default) for name, f in FIELDS.items()}


def validate_config(config: dict) -> dict:
    """Check a config's keys, types and ranges, and fill in defaults.

    The model family checks what depends on the family (:func:`trainables.fitting.families.validate`).

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
    for name, field in FIELDS.items():
        field.check(name, full[name])
    return full


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
