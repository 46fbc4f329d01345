"""The model families by config ``model`` name: the one place that lists them.

A family is a :class:`~trainables.fitting.family.Family` built by its own module;
adding one is that module and one entry here (or, for a family of your own, one
entry added at run time before the search or final training starts).
"""

from __future__ import annotations

from trainables.core.config import ConfigError, fields_table, validate_config
from trainables.fitting import lookup, network, readout
from trainables.fitting.family import Family

FAMILIES: dict[str, Family] = {
    "network": network.FAMILY,
    "ridge": readout.FAMILY,
    "lookup": lookup.FAMILY,
}


def get_family(name: str) -> Family:
    """The family called ``name``; ConfigError listing the registry otherwise."""
    if name not in FAMILIES:
        raise ConfigError(f"config key 'model': {name!r} is not one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


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
    full = validate_config(config)
    get_family(full["model"]).check(full, image_size)
    return full


def config_table() -> str:
    """The README's table of config keys (``python -c "from trainables.fitting.families import config_table;
    print(config_table())"``)."""
    return fields_table({"model": list(FAMILIES)})
