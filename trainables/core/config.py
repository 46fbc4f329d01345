"""The training configuration: one flat JSON object, shared by search, export and train.

A config is a plain ``dict`` validated against a schema of :class:`Field` values: the
keys every config has (:data:`COMMON_FIELDS`) and those each model family declares
beside its code, assembled by the families' registry. Keeping it flat
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
SEED_RANGE = _SEED
# The keys every config has, whatever its family: the family, the training budget the study's scheduler and the
# profiles cap, the seed, and the inner split a search scores on. A family declares its own keys beside its code
# (:attr:`trainables.fitting.family.Family.fields`); the registry of families assembles the whole schema
# (:func:`trainables.fitting.families.config_fields`).
COMMON_FIELDS: dict[str, Field] = {
    "model": Field((str,), "network", help="the model family"),
    "epochs": Field((int,), 30, ge=1, le=100_000, help="at most this many (a profile may cap it)"),
    "seed": Field((int,), 0, **_SEED, help="weights, batch order, dropout; CV folds"),
    "inner_val_fraction": Field(_NUM, 0.1, gt=0, lt=0.5,
                                help="share of each object's training images in the inner split"),
    "split_seed": Field((int,), 0, **_SEED, help="seed of the inner validation split"),
}

EXTRA_KEYS = ("provenance",)


def fields_table(fields: dict[str, Field], owners: dict[str, list[str]], choices: dict[str, list] | None = None) -> str:
    """The config keys as a Markdown table: key, families, type, default, allowed values, meaning (the README's).

    ``owners``: key -> the families that declare it (empty: every family). ``choices``: allowed values of keys
    whose registry lives above this module (``model``: the families).
    """
    rows = ["| key | family | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- | --- |"]
    for name, f in fields.items():
        allowed = ("one of " + ", ".join(choices[name])) if choices and name in choices else f.range_text()
        rows.append(f"| `{name}` | {', '.join(owners.get(name) or ['all'])} | {f.type_text()} | "
                    f"`{json.dumps(f.default)}` | {allowed} | {f.help} |")
    return "\n".join(rows)


def default_config(fields: dict[str, Field]) -> dict:
    """A complete config with every field of ``fields`` at its default."""
    return {name: (list(f.default) if isinstance(f.default, list) else f.default) for name, f in fields.items()}


def validate_config(config: dict, fields: dict[str, Field]) -> dict:
    """Check a config's keys, types and ranges against ``fields``, and fill in defaults.

    The model family checks what depends on the family (:func:`trainables.fitting.families.validate`, which also
    passes the whole schema).

    Parameters
    ----------
    config : dict
        Partial or complete config.
    fields : dict
        The schema: key -> :class:`Field`.

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
    unknown = sorted(set(config) - set(fields) - set(EXTRA_KEYS))
    if unknown:
        raise ConfigError(f"unknown config key '{unknown[0]}' (valid keys: {', '.join(fields)})")
    full = default_config(fields)
    full.update(config)
    for name, field in fields.items():
        field.check(name, full[name])
    return full


def hyperparameters(config: dict, fields: dict[str, Field]) -> dict:
    """The config's keys that are ``fields`` (not ``provenance``, a trial's sampling helpers or bookkeeping keys)."""
    return {k: v for k, v in config.items() if k in fields}


# The keys of an exported config's ``provenance`` that final training reads, and their types.
PROVENANCE = {"experiment": str, "trial_id": str, "value": (int, float), "data": dict, "data_fingerprint": str,
              "tracking_uri": str, "parent_run_id": str}
PROVENANCE_DATA = {"source": str, "data_seed": int, "resolution": int, "images_per_object": int}


def read_config_file(path: str | Path) -> dict:
    """The JSON object in a config file, unvalidated (the caller validates it against the schema); the one place a
    config file is read.

    Raises
    ------
    ConfigError
        One line naming the file and what is wrong: it cannot be read, its bytes are not UTF-8 text, it is not
        JSON, it is not a JSON object, or its ``provenance`` is not an object.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not text (byte {err.start} is not UTF-8): give the JSON file "
                          "the search exported") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"config file {path} is not valid JSON: {err.msg} (line {err.lineno})") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is not a config: its JSON nests too deep") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a JSON object, got {type(raw).__name__}")
    if not isinstance(raw.get("provenance", {}), dict):
        raise ConfigError(f"config file {path}: 'provenance' must be a JSON object, got "
                          f"{type(raw['provenance']).__name__}")
    provenance = raw.get("provenance", {})
    for key, kind in PROVENANCE.items():
        value = provenance.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ConfigError(f"config file {path}: provenance '{key}' has the wrong type ({value!r})")
    for key, kind in PROVENANCE_DATA.items():
        value = (provenance.get("data") or {}).get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ConfigError(f"config file {path}: provenance 'data.{key}' has the wrong type ({value!r})")
    return raw
