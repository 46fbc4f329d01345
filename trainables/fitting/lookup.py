"""The lookup family (``model: lookup``), ideal observers: an image's responses predicted from its label alone.

``lookup_by: object`` predicts each image by the mean training response to its
object; ``lookup_by: category``, to its category. They answer "how much of the
data set is object (or category) recognition?": a model of IT that does no better
than the object lookup has learnt a lookup table, and on the real recordings the
category observer explains about 15 % of the explainable variance (Yamins et al.
2014). Object names of the form ``<category>_<k>`` (the synthetic data's) give
the category; names without an underscore have no category to look up.
"""

from __future__ import annotations

import numpy as np

from trainables.core.config import Field
from trainables.core.metrics import ObjectSums, explained_variance, object_sums, pearson_per_site
from trainables.data.schema import ITData
from trainables.data.splits import inner_split
from trainables.fitting.family import PROCESS_BYTES, DataShape, Family, FinalContext, FinalFit, TrialSession


class LabelError(ValueError):
    """Labels that cannot be looked up (e.g. no category in the object names)."""


def labels(objects: np.ndarray, by: str) -> np.ndarray:
    """The label each image is looked up by.

    Parameters
    ----------
    objects : array of str, shape (N,)
    by : ``"object"`` or ``"category"``

    Returns
    -------
    array of str, shape (N,)
    """
    if by == "object":
        return np.asarray(objects)
    if not all("_" in str(name) for name in objects):
        example = next(str(name) for name in objects if "_" not in str(name))
        raise LabelError(f"lookup_by category needs object names '<category>_<k>'; got {example!r}")
    return np.array([str(name).rsplit("_", 1)[0] for name in objects])


def lookup_predict(labels_fit: np.ndarray, y_fit: np.ndarray, labels_new: np.ndarray) -> np.ndarray:
    """Mean fitted response per label, read out for new labels (the grand mean for a label never fitted).

    Parameters
    ----------
    labels_fit : array, shape (N_fit,)
    y_fit : array, shape (N_fit, n_sites)
    labels_new : array, shape (N_new,)

    Returns
    -------
    array, shape (N_new, n_sites), float32
    """
    names, index = np.unique(labels_fit, return_inverse=True)
    sums = np.zeros((len(names), y_fit.shape[1]))
    np.add.at(sums, index, y_fit)
    means = sums / np.bincount(index, minlength=len(names))[:, None]
    table = dict(zip(names.tolist(), means))
    grand = y_fit.mean(axis=0)
    return np.stack([table.get(label, grand) for label in labels_new.tolist()]).astype(np.float32)


def fit_lookup_inner(config: dict, data: ITData) -> dict:
    """The search's view: means over the training images minus the inner split, scored on the inner split.

    Returns
    -------
    dict
        ``inner_ev``, ``inner_r``.
    """
    return _fit_inner(config, data)[0]


def _fit_inner(config: dict, data: ITData) -> tuple[dict, ObjectSums]:
    """:func:`fit_lookup_inner`'s scores, and the inner-split residuals summed per object."""
    fit_idx, inner_idx = inner_split(data.object_train, config["inner_val_fraction"], config["split_seed"])
    names = labels(data.object_train, config["lookup_by"])
    y = data.spikes_train
    pred = lookup_predict(names[fit_idx], y[fit_idx], names[inner_idx])
    scores = {"inner_ev": explained_variance(y[inner_idx], pred),
              "inner_r": float(pearson_per_site(y[inner_idx], pred).mean())}
    return scores, object_sums(y[inner_idx], pred, data.object_train[inner_idx])


def fit_lookup_final(config: dict, data: ITData) -> dict[str, np.ndarray]:
    """Final training: means over the whole training set; part (val / test) -> predictions (N, n_sites)."""
    by = config["lookup_by"]
    names = labels(data.object_train, by)
    return {part: lookup_predict(names, data.spikes_train, labels(getattr(data, f"object_{part}"), by))
            for part in ("val", "test")}


IDEAL_OBSERVERS = {"object ideal observer": "object", "category ideal observer": "category"}


def ideal_observer_scores(data: ITData, config: dict, final: bool) -> dict[str, float]:
    """EV of the ideal observers that the data's labels allow, to print beside any model fitted on it.

    ``final``: fitted on all training images and scored on the official validation set (as final
    training scores); else the search's inner split of ``config`` (as a trial scores).

    Returns
    -------
    dict name -> EV; the category observer is left out when the names carry no category.
    """
    scores = {}
    for name, by in IDEAL_OBSERVERS.items():
        lookup = {**config, "model": "lookup", "lookup_by": by}
        try:
            if final:
                scores[name] = explained_variance(data.spikes_val, fit_lookup_final(lookup, data)["val"])
            else:
                scores[name] = fit_lookup_inner(lookup, data)["inner_ev"]
        except LabelError:
            continue
    return scores


def search_fit(config: dict, data: ITData, session: TrialSession) -> None:
    """Label means over the fit images, scored on the inner split, reported once."""
    scores, sums = _fit_inner(config, data)
    session.report(scores, done=True, inner_sums=lambda: sums)


def final_fit(config: dict, data: ITData, ctx: FinalContext) -> FinalFit:
    """Label means over all training images, read out for the validation and test images."""
    predictions = fit_lookup_final(config, data)
    return FinalFit(predictions["val"], predictions["test"], {"lookup_by": config["lookup_by"]})


def memory_bytes(config: dict, shape: DataShape, on_gpu: bool) -> int:
    """A lookup holds a table of label means: the process is all it needs."""
    return PROCESS_BYTES


FAMILY = Family(
    name="lookup",
    search_fit=search_fit,
    final_fit=final_fit,
    memory_bytes=memory_bytes,
    deterministic=True,
    fields={"lookup_by": Field((str,), "object", ("object", "category"), help="the label images are looked up by")},
    references=ideal_observer_scores,
)
