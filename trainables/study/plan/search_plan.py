"""A search plan: everything a study decided, saved in ``<study>/search.json`` whenever it changes.

The plan is a frozen value: the search builds it before anything is written (a new
search from its flags, a resume from the saved plan and the few flags a resume may
change), and every part of the study takes what it needs from it. It changes three
times at most, and is written each time: when the study starts (its MLflow run's
ids, a resume's new re-check flags), and when it ends (``finished``). What one run
of the study is given besides (its time budget, the cluster) is not the plan's:
:mod:`trainables.study.plan.run_options`. Nothing in it is
an absolute path into the study: the study folder is wherever ``search.json`` is
found, the default tracking store is ``../mlflow.db`` beside it, so a study folder
(with its storage's ``mlflow.db``) can be moved and resumed where it lands.

``to_json`` / ``from_json`` carry a version: :data:`PLAN_VERSION` is written;
plans of versions 1 (the settings files of releases before the plan existed) and 2 are
read for export and report, and refused for a resume (:func:`check_resumable`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

from search_spaces.context import SpaceContext
from trainables.core.layout import SEARCH_FILE, default_tracking_uri

PLAN_VERSION = 3


class PlanError(ValueError):
    """A ``search.json`` that cannot be read or resumed; the message names the file and what to do."""


@dataclass(frozen=True)
class DataPlan:
    """The data a study searches on: ``synthetic`` at a size, or a recordings file (absolute path)."""

    source: str
    data_seed: int
    resolution: int
    images_per_object: int


@dataclass(frozen=True)
class SchedulerPlan:
    """When trials are stopped early (:mod:`trainables.study.tune.schedulers`); ``max_t``: the longest recipe's epochs."""

    name: str
    grace_period: int
    reduction_factor: float
    max_t: int


@dataclass(frozen=True)
class RecheckPlan:
    """The top-K re-check: the ``top`` best configs, ``seeds`` new seeds each (0: off)."""

    top: int
    seeds: int


@dataclass(frozen=True)
class ResourcePlan:
    """What each trial asks of the cluster, and how often it saves a resumable checkpoint."""

    cpus_per_trial: float
    gpus_per_trial: float
    max_concurrent: int | None = None
    memory_per_trial_gib: float | None = None
    checkpoint_interval: float = 300.0


@dataclass(frozen=True)
class TrackingPlan:
    """Where trials are logged: ``uri`` None is the storage's own ``mlflow.db`` (found again wherever it moves)."""

    uri: str | None = None
    experiment_id: str = ""
    parent_run_id: str = ""


@dataclass(frozen=True)
class SearchPlan:
    """A study's decisions.

    Attributes
    ----------
    name, space, scientific : str
        The study's name, its search space and the hyperparameter it asks about.
    sampler : str
        Optuna's sampler, by ``--sampler`` name: ``qmc``, ``tpe`` or ``random``.
    seed : int
        Seed of the sampler and of every trial.
    num_samples : int
        Trials the search runs.
    scheduler, recheck, resources, tracking, data :
        See their classes.
    profile : str
        The profile the sizes came from.
    max_epochs : int or None
        The profile's cap on a trial's epochs (what the space was told).
    pretrained : tuple of str
        Backbones whose ImageNet weights the space may ask for here.
    imagenet : tuple of str
        Backbones whose ImageNet state dicts the driver ships to trials.
    notes : tuple of str
        Lines said when the search started (e.g. which backbones fell back to random weights).
    git_commit, data_fingerprint : str
        Provenance.
    image_size : int
        Side of the stored images, px (known once the data is loaded).
    references : dict
        The ideal observers' EV on the trials' inner split, name -> EV: what a model must beat to be more than
        object recognition.
    finished : bool
        Every trial and the re-check ended.
    """

    name: str
    space: str
    scientific: str
    sampler: str
    seed: int
    num_samples: int
    scheduler: SchedulerPlan
    recheck: RecheckPlan
    resources: ResourcePlan
    data: DataPlan
    profile: str
    max_epochs: int | None
    pretrained: tuple = ()
    imagenet: tuple = ()
    tracking: TrackingPlan = field(default_factory=TrackingPlan)
    notes: tuple = ()
    git_commit: str = "unknown"
    data_fingerprint: str = ""
    image_size: int = 0
    references: dict = field(default_factory=dict)
    finished: bool = False
    version: int = PLAN_VERSION

    def context(self) -> SpaceContext:
        """The context the study's space is sampled in."""
        return SpaceContext(pretrained=frozenset(self.pretrained), max_epochs=self.max_epochs, seed=self.seed)

    def tracking_uri(self, folder: Path) -> str:
        """The MLflow tracking URI of the study in ``folder``."""
        return self.tracking.uri or default_tracking_uri(Path(folder).parent)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = SEARCH_FILE) -> "SearchPlan":
        """The plan in ``text``; PlanError naming ``source`` when it is not one.

        A settings file of version 1 (no ``version`` key) is converted: what export,
        report and the records need is there; :func:`check_resumable` refuses it.
        """
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            version = raw.get("version", 1)
            if not isinstance(version, int) or isinstance(version, bool):
                raise TypeError(f"version: {version!r}")
            if version > PLAN_VERSION:
                raise PlanError(f"{source} is a plan of version {version}, newer than this release reads "
                                f"({PLAN_VERSION}): upgrade it-search")
            if version == 1:
                raw = _from_version_1(raw)
            if "searcher" in raw:  # version 2 named Optuna's sampler so
                raw["sampler"] = raw.pop("searcher")
            for key in ("pretrained", "imagenet", "notes"):
                if not isinstance(raw.get(key, []), list):
                    raise TypeError(f"{key}: expected a list, got {raw[key]!r}")
            plan = cls(**{**raw,
                          "scheduler": SchedulerPlan(**raw["scheduler"]), "recheck": RecheckPlan(**raw["recheck"]),
                          "resources": ResourcePlan(**raw["resources"]), "data": DataPlan(**raw["data"]),
                          "tracking": TrackingPlan(**raw["tracking"]),
                          **{k: tuple(raw.get(k, ())) for k in ("pretrained", "imagenet", "notes")}})
            _check_types(plan)
            return plan
        except PlanError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
            raise PlanError(f"{source} is damaged ({type(err).__name__}: {err}); restore it from a copy, or "
                            "start a new search with another --name") from None


def _check_types(value) -> None:
    """TypeError naming the first field of a plan (or of one of its parts) whose value has the wrong type: JSON carries
    any type where the plan expects one (``"num_samples": "ten"``)."""
    for f in fields(value):
        got = getattr(value, f.name)
        if is_dataclass(got):
            _check_types(got)
            continue
        allowed = tuple(_TYPES[t] for t in f.type.replace(" ", "").split("|"))
        if isinstance(got, bool) and bool not in allowed or not isinstance(got, allowed):
            raise TypeError(f"{f.name}: expected {f.type}, got {got!r}")
        if isinstance(got, dict) and f.name == "references" and not all(
                isinstance(k, str) and isinstance(v, (int, float)) for k, v in got.items()):
            raise TypeError(f"references: expected name -> EV, got {got!r}")
        if isinstance(got, tuple) and not all(isinstance(x, str) for x in got):
            raise TypeError(f"{f.name}: expected names, got {got!r}")


# The plan's annotations as types (a float field takes an integer too, as JSON writes 300.0 as 300).
_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "tuple": tuple, "dict": dict,
          "None": type(None)}


def _from_version_1(raw: dict) -> dict:
    """A settings dict of the releases before the plan (``search.json`` without ``version``) as plan fields."""
    context = raw.get("context", {})
    return {
        "name": raw["name"], "space": raw["space"], "scientific": raw.get("scientific", ""),
        "searcher": raw["searcher"], "seed": raw["seed"], "num_samples": raw["num_samples"],
        "scheduler": {"name": raw["scheduler"], "grace_period": raw["grace_period"],
                      "reduction_factor": raw["reduction_factor"], "max_t": raw["max_t"]},
        "recheck": raw.get("recheck", {"top": 0, "seeds": 0}),
        "resources": {"cpus_per_trial": raw["cpus_per_trial"], "gpus_per_trial": raw["gpus_per_trial"],
                      "max_concurrent": raw.get("max_concurrent"),
                      "checkpoint_interval": raw.get("checkpoint_interval", 300.0)},
        "data": {k: raw["data"][k] for k in ("source", "data_seed", "resolution", "images_per_object")},
        "profile": raw["profile"]["name"], "max_epochs": context.get("max_epochs"),
        "pretrained": context.get("pretrained", ()), "imagenet": raw.get("imagenet", ()),
        "tracking": {"uri": raw["tracking_uri"], "experiment_id": raw.get("experiment_id", ""),
                     "parent_run_id": raw.get("parent_run_id", "")},
        "notes": raw.get("notes", ()), "git_commit": raw.get("git_commit", "unknown"),
        "data_fingerprint": raw.get("data_fingerprint", ""), "finished": raw.get("finished", False), "version": 1,
        "image_size": (raw.get("memory") or {}).get("image_shape", [0])[-1] or raw["data"]["resolution"],
        "references": raw.get("references", {}),
    }


def read_plan(folder: Path) -> SearchPlan:
    """The plan of the study in ``folder``; PlanError naming the file when it is unreadable or damaged."""
    path = Path(folder) / SEARCH_FILE
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise PlanError(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise PlanError(f"{path} is damaged (byte {err.start} is not UTF-8 text); restore it from a copy, or start a "
                        "new search with another --name") from None
    return SearchPlan.from_json(text, str(path))


def write_plan(plan: SearchPlan, folder: Path) -> None:
    """Write ``search.json`` atomically (a kill never leaves half a plan)."""
    path = Path(folder) / SEARCH_FILE
    tmp = path.with_name(f".{SEARCH_FILE}.tmp")
    tmp.write_text(plan.to_json())
    tmp.replace(path)


def check_resumable(plan: SearchPlan, folder: Path) -> None:
    """Refuse, in one line, a study this release cannot continue."""
    if plan.version < PLAN_VERSION:
        raise PlanError(f"study '{plan.name}' in {folder} was written by an earlier release (plan version "
                        f"{plan.version}): its Ray state names modules that have moved, so it cannot be resumed; "
                        "analysis.export and analysis.report still read it, or start a new search")
