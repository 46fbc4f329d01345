"""Ideal observers (``model: lookup``) and what the synthetic data set is like (generator v4)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from trainables.data.synthetic import CATEGORIES, OBJECTS_PER_CATEGORY, WEIGHTS, SyntheticSpec, render_images
from trainables.fitting.families import complete
from trainables.fitting.lookup import (LabelError, fit_lookup_final, fit_lookup_inner, ideal_observer_scores, labels,
                                       lookup_predict)


def test_lookup_predicts_each_label_by_its_mean_and_unknown_labels_by_the_grand_mean():
    y = np.array([[1.0, 10.0], [3.0, 20.0], [5.0, 0.0]])
    pred = lookup_predict(np.array(["a", "a", "b"]), y, np.array(["b", "a", "c"]))
    np.testing.assert_allclose(pred, [[5.0, 0.0], [2.0, 15.0], [3.0, 10.0]])


def test_category_labels_come_from_the_object_names():
    np.testing.assert_array_equal(labels(np.array(["star_3", "cross_0", "star_1"]), "category"),
                                  ["star", "cross", "star"])
    with pytest.raises(LabelError, match="'bear'"):
        labels(np.array(["star_3", "bear"]), "category")


def test_ideal_observers_score_the_split_a_trial_scores(tiny_data):
    config = complete({"model": "lookup", "lookup_by": "object"})
    inner = fit_lookup_inner(config, tiny_data)
    assert set(inner) == {"inner_ev", "inner_r"} and -1 < inner["inner_ev"] < 1
    final = fit_lookup_final(config, tiny_data)
    assert final["val"].shape == tiny_data.spikes_val.shape and final["test"].shape[0] == len(tiny_data.object_test)
    # Two images of the same object get the same prediction.
    names, counts = np.unique(tiny_data.object_val, return_counts=True)
    same = np.flatnonzero(tiny_data.object_val == names[np.argmax(counts)])
    assert len(same) > 1
    np.testing.assert_array_equal(final["val"][same[0]], final["val"][same[1]])
    scores = ideal_observer_scores(tiny_data, complete({}), final=False)
    assert scores["object ideal observer"] == pytest.approx(inner["inner_ev"])
    assert set(scores) == {"object ideal observer", "category ideal observer"}


def test_the_data_set_is_not_an_object_recognition_task(ground_truth):
    """Generator v4's ground truth: the object and category means leave most of the signal unexplained.

    v3 failed this: there, the 64 objects' means held 93 % of the explainable variance.
    """
    spec, bank, params, terms = (ground_truth[k] for k in ("spec", "bank", "params", "terms"))
    signal = sum(np.sqrt(w) * terms[name] for name, w in WEIGHTS.items())
    obj = params["object"]
    category = bank["category"][obj]

    def linear_share(x):
        """What a least-squares map of ``x`` (N, k) explains of the signal, mean over sites."""
        design = np.column_stack([x, np.ones(len(x))])
        fitted = design @ np.linalg.lstsq(design, signal, rcond=None)[0]
        return float(np.mean(fitted.var(0) / signal.var(0)))

    def share(groups):
        """What the group means explain: least squares on the groups' one-hot codes."""
        codes = np.unique(groups, return_inverse=True)[1]
        return linear_share(np.eye(codes.max() + 1)[codes])

    assert len(np.unique(obj)) == len(CATEGORIES) * OBJECTS_PER_CATEGORY
    # In-sample object means also fit ~64/640 of pure noise: the bound allows for it.
    assert share(obj) < 0.45
    assert 0.08 < share(category) < 0.25  # published: 15 % of the explainable variance
    # Pixels explain less than the labels (published 0.09 against 0.12 EV): what the image's mean colour explains
    # (what a linear map of the pixels reads best; it includes what other terms share with the colour) stays well
    # under the category means' share. With the low-level share at 0.12 (constants ceccf0) it was 0.97 of it here,
    # and at 224 px data seed 2's pixel readout came out above both ideal observers; at 0.09, 0.79.
    colour = render_images(replace(spec, resolution=32), bank, params).mean(axis=(2, 3))  # (N, 3)
    assert linear_share(colour) < 0.85 * share(category)


def test_where_the_object_is_matters_to_the_features_term(ground_truth):
    """The sites pool the ImageNet features over fields a quarter to half the image wide, so a readout of the image-wide
    average of those very features (what a globally pooled network such as the report's shallow CNN ends in) misses
    much of the term. Held-out least squares, 480 images to fit, 160 to score: 0.45 here; 0.68 with the fields of
    constants da4ada (sigma 0.5-1.0, softplus slope 3), where the report's shallow CNN trained from scratch (on
    the 112-px images) reached 0.30 EV against the published 0.23.
    """
    features, term = ground_truth["features"], ground_truth["terms"]["features"]
    design = np.column_stack([features.mean(axis=(2, 3)), np.ones(len(features))])  # (N, 112 + 1)
    n_fit = 480
    coef = np.linalg.lstsq(design[:n_fit], term[:n_fit], rcond=None)[0]
    residual = term[n_fit:] - design[n_fit:] @ coef
    assert np.mean(1 - residual.var(axis=0) / term[n_fit:].var(axis=0)) < 0.55


def test_responses_do_not_depend_on_the_resolution(private_cache):
    from trainables.data.datasets import load_synthetic

    small = load_synthetic(SyntheticSpec(seed=1, resolution=16, images_per_object=3, n_repetitions=4), private_cache)
    large = load_synthetic(SyntheticSpec(seed=1, resolution=32, images_per_object=3, n_repetitions=4), private_cache)
    np.testing.assert_array_equal(small.spikes_train, large.spikes_train)
    np.testing.assert_array_equal(small.object_val, large.object_val)
    assert small.stimulus_train.shape[-1] == 16 and large.stimulus_train.shape[-1] == 32


@pytest.mark.slow
def test_final_training_of_a_lookup_and_compare_carries_the_ideal_observers(tmp_path, private_cache, capsys):
    from analysis import compare
    from trainables import train

    config = tmp_path / "lookup.json"
    config.write_text(json.dumps({"model": "lookup", "lookup_by": "category"}))
    out = tmp_path / "runs" / "train" / "category_lookup"
    assert train.main(["--config", str(config), "--resolution", "32", "--images-per-object", "10", "--out", str(out),
                       "--no-mlflow"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["lookup_by"] == "category"
    assert metrics["references"]["category ideal observer"] == pytest.approx(metrics["ev"])
    assert compare.main(["--storage", str(tmp_path / "runs")]) == 0
    table = (tmp_path / "runs" / "compare.md").read_text()
    assert "object ideal observer (labels only)" in table and "category ideal observer (labels only)" in table
    assert "| category_lookup |" in table


def test_compare_lists_each_ideal_observer_once_for_the_renderings_of_one_data_set(tmp_path):
    """The shallow CNN scored on the 112-px rendering and a readout on the 224-px one share their ideal observers."""
    from analysis.compare import collect

    def write(model, fingerprint, ev, references):
        (tmp_path / "train" / model).mkdir(parents=True)
        (tmp_path / "train" / model / "metrics.json").write_text(json.dumps(
            {"ev": ev, "r_mean": 0.5, "r_median": 0.5, "noise_ceiling_ev": 0.8, "seed": 0,
             "data_fingerprint": fingerprint, "references": references}))

    write("shallow_cnn", "aaaa", 0.26, {"object ideal observer": 0.125, "category ideal observer": 0.12})
    write("readout", "bbbb", 0.38, {"object ideal observer": 0.125, "category ideal observer": 0.12})
    write("other_seed", "cccc", 0.37, {"object ideal observer": 0.129, "category ideal observer": 0.12})
    rows = {(r["model"], r["EV"]): r["data"] for r in collect(tmp_path)}
    assert rows[("object ideal observer (labels only)", 0.125)] == "aaaa, bbbb"
    assert rows[("object ideal observer (labels only)", 0.129)] == "cccc"
    assert rows[("category ideal observer (labels only)", 0.12)] == "aaaa, bbbb, cccc"
    assert len(rows) == 6


def test_the_early_term_is_what_the_stem_computes_beyond_the_local_colour():
    """A stem whose maps were an affine function of each cell's mean colour would leave the early term nothing."""
    from trainables.data.synthetic import N_SITES, _early_term

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (40, 3, 32, 32))
    colour = images.reshape(40, 3, 16, 2, 16, 2).mean(axis=(3, 5))
    mixing = rng.normal(0, 1, (32, 3))
    affine = np.einsum("cj,njhw->nchw", mixing, colour) + rng.normal(0, 1, (1, 32, 1, 1))
    rf = rng.uniform(-0.4, 0.4, N_SITES)
    assert np.abs(_early_term(np.random.default_rng(1), images, affine, rf, rf)).max() < 1e-6
    # The same with something the colour does not predict (squared colour contrast, as a rectifying filter gives).
    nonlinear = affine + (colour[:, :1] - colour[:, 1:2]) ** 2
    term = _early_term(np.random.default_rng(1), images, nonlinear, rf, rf)
    assert term.shape == (40, N_SITES) and term.std(axis=0).min() > 1e-3
