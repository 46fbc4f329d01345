"""Flags shared by the search and final training: data, profile, ImageNet weights, tracking; checked before any work.

Errors are one line and exit code 2 (:mod:`trainables.core.usage`).
"""

from __future__ import annotations

import argparse
import urllib.request
from dataclasses import replace
from pathlib import Path

from trainables.core.usage import UsageError, check_writable
from trainables.data.datasets import load_dataset
from trainables.data.schema import ITData, check_source
from trainables.models.weights import WeightsPolicy
from trainables.study.plan.profiles import Profile, epoch_cap_text, resolve_profile
from trainables.study.tracking.sqlite_store import StoreDamaged, check_store


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="'synthetic' (default) or a path to an IT_data.h5-style file")
    parser.add_argument("--profile", default="auto", choices=("auto", "smoke", "full"),
                        help="auto: smoke without a GPU, full with one")
    parser.add_argument("--resolution", type=int, help="synthetic image side in px (overrides the profile)")
    parser.add_argument("--images-per-object", type=int, help="synthetic images per object (overrides the profile)")
    parser.add_argument("--max-epochs", type=int, help="cap on epochs (overrides the profile)")
    parser.add_argument("--data-seed", type=int, help="seed of the synthetic data set (default 0)")


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--offline", action="store_true",
                        help="never download ImageNet weights: only the torch cache counts (also $ITSEARCH_OFFLINE=1)")
    parser.add_argument("--weights-mirror", metavar="URL_OR_DIR",
                        help="fetch missing ImageNet checkpoints from a lab's mirror (a base URL or a folder) instead "
                             "of torchvision's URL (also $ITSEARCH_WEIGHTS_MIRROR)")


def weights_policy(args: argparse.Namespace, profile: Profile | None = None):
    """Where missing ImageNet checkpoints may come from: flags, then environment.

    A smoke search (a CPU demo) uses what is cached unless a mirror is named; the full
    profile and final training fetch what is missing unless offline.
    """
    policy = WeightsPolicy.from_environment(args.offline, args.weights_mirror)
    if profile is not None and profile.name == "smoke" and not policy.mirror:
        policy = replace(policy, offline=True)
    return policy


def resolve_data_arguments(args: argparse.Namespace, hints: dict | None = None) -> Profile:
    """Check the data and profile flags; raise UsageError on bad ones. Loads nothing.

    Unset ``--data`` / ``--data-seed`` become ``synthetic`` / 0.

    ``hints`` maps a profile name to sizes a study prefers under it (e.g. a readout
    study needs more pixels than 32 for ImageNet features to mean anything);
    explicit flags win over hints.
    """
    args.data = args.data or "synthetic"
    args.data_seed = 0 if args.data_seed is None else args.data_seed
    for flag in ("resolution", "images_per_object", "max_epochs"):
        value = getattr(args, flag)
        if value is not None and value < (16 if flag == "resolution" else 2 if flag == "images_per_object" else 1):
            raise UsageError(f"--{flag.replace('_', '-')} {value} is too small")
    try:
        check_source(args.data)
    except ValueError as err:
        raise UsageError(str(err)) from None
    profile = resolve_profile(args.profile)
    sizes = {**(hints or {}).get(profile.name, {})}
    sizes.update({k: v for k, v in (("resolution", args.resolution), ("images_per_object", args.images_per_object),
                                    ("max_epochs", args.max_epochs)) if v is not None})
    return resolve_profile(profile.name, **sizes)


def load_data(args: argparse.Namespace, profile: Profile) -> ITData:
    """The data set the flags name (synthetic at the profile's size, or a file)."""
    return load_dataset(args.data, profile.synthetic_spec(args.data_seed))


def profile_message(source: str, profile: Profile) -> str:
    """The line a command starts with: the profile, its data and its epoch cap."""
    if source == "synthetic":
        base = profile.describe()
    else:
        cap = epoch_cap_text(profile.max_epochs)
        base = f"profile {profile.name}: data {source}, {cap}"
    if profile.name == "smoke":
        base += " (reduced for a CPU; --profile full runs at report scale)"
    return base


def check_tracking_uri(uri: str) -> None:
    """Fail before any work on an MLflow URI that cannot be used. Writes nothing."""
    if uri.startswith("sqlite:///"):
        check_writable(Path(uri[len("sqlite:///"):]).expanduser().parent, f"MLflow tracking URI {uri}")
        try:
            check_store(uri)
        except StoreDamaged as err:
            raise UsageError(str(err)) from None
        return
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as reply:
                if reply.status != 200:
                    raise OSError(f"status {reply.status}")
        except OSError as err:
            raise UsageError(f"MLflow tracking server {uri} cannot be reached ({err})") from None
        return
    raise UsageError(f"MLflow tracking URI {uri!r} is not supported (use sqlite:///FILE or http://HOST:PORT)")
