"""The model families by config ``model`` name: the one place that lists them, and what is assembled from them.

A family is a :class:`~trainables.fitting.family.Family` built by its own module;
adding one is that module and one entry here (or, for a family of your own, one
entry added at run time before the search or final training starts). From the
registry come the config schema (every config's keys and each family's,
:func:`config_fields`), the README's key table (:func:`config_table`), the metrics
trials report (:func:`epoch_metrics`) and the reference scores every model is
printed beside (:func:`reference_scores`).
"""

from __future__ import annotations

from trainables.core.config import COMMON_FIELDS, ConfigError, Field, fields_table, hyperparameters, validate_config
from trainables.data.schema import ITData
from trainables.fitting import lookup, network, readout
from trainables.fitting.family import Family

FAMILIES: dict[str, Family] = {
    "network": network.FAMILY,
    "ridge": readout.FAMILY,
    "lookup": lookup.FAMILY,
}


def get_family(name: str, families: dict[str, Family] | None = None) -> Family:
    """The family called ``name`` (in ``families``, default the registry); ConfigError listing them otherwise."""
    families = FAMILIES if families is None else families
    if name not in families:
        raise ConfigError(f"config key 'model': {name!r} is not one of {', '.join(families)}")
    return families[name]


def config_fields(families: dict[str, Family] | None = None) -> dict[str, Field]:
    """The config schema: every config's keys, then each family's in the registry's order.

    ``families``: default the registry (a Ray worker passes the families the driver shipped to it).

    Raises
    ------
    ConfigError
        Two families declare one key differently (a key means one thing in every config).
    """
    fields = dict(COMMON_FIELDS)
    for family in (FAMILIES if families is None else families).values():
        for name, field in family.fields.items():
            if fields.setdefault(name, field) != field:
                raise ConfigError(f"config key '{name}': family '{family.name}' declares it differently from "
                                  "another family")
    return fields


def owners(families: dict[str, Family] | None = None) -> dict[str, list[str]]:
    """Config key -> the families that declare it (every config's keys: none)."""
    found: dict[str, list[str]] = {}
    for family in (FAMILIES if families is None else families).values():
        for name in family.fields:
            found.setdefault(name, []).append(family.name)
    return found


def complete(config: dict, families: dict[str, Family] | None = None) -> dict:
    """A config's keys, types and ranges checked against the schema, defaults filled in (no family check).

    Raises
    ------
    ConfigError
        The message names the key.
    """
    return validate_config(config, config_fields(families))


def validate(config: dict, image_size: int | None = None) -> dict:
    """A complete config checked as a whole: keys, types and ranges, then what its family requires.

    Parameters
    ----------
    config : dict
        Partial or complete config.
    image_size : int, optional
        Side of the images it will read, when known (a network's feature map must not vanish).

    Returns
    -------
    dict
        A new, complete config.

    Raises
    ------
    ConfigError
        The message names the key.
    """
    full = complete(config)
    get_family(full["model"]).check(full, image_size)
    return full


def config_of(trial_config: dict, families: dict[str, Family] | None = None) -> dict:
    """The config a search trial trains: the config keys of its Ray config (which the searcher completed and validated
    when it was sampled); sampling helpers and bookkeeping keys left out. No validation: it was validated once."""
    return hyperparameters(trial_config, config_fields(families))


def epoch_metrics(common: tuple, families: dict[str, Family] | None = None) -> tuple:
    """The metrics trials report per epoch: ``common`` (every trial's), then each family's own."""
    names = list(common)
    for family in (FAMILIES if families is None else families).values():
        names += [m for m in family.epoch_metrics if m not in names]
    return tuple(names)


def reference_scores(data: ITData, config: dict, final: bool) -> dict[str, float]:
    """The scores of every registered family's reference predictors (the ideal observers: labels only, no pixels),
    fitted as ``config``'s search scores (the inner split), or with ``final`` on all training images and scored on
    the official validation set. Name -> EV."""
    scores: dict[str, float] = {}
    for family in FAMILIES.values():
        if family.references is not None:
            scores.update(family.references(data, config, final))
    return scores


def config_table() -> str:
    """The README's table of config keys (``python -c "from trainables.fitting.families import config_table;
    print(config_table())"``)."""
    return fields_table(config_fields(), owners(), {"model": list(FAMILIES)})
