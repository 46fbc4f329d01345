"""Every figure survives a diverged trial: its axis keeps to the bulk of the other trials and the references, and its
caption names the point outside.

The study is ``tests/diverged_family.py``'s: four configs of a test family, the one at lr 0.01 reporting an inner
EV of -30 from an epoch on, fitted in this process (no Ray) through a recording session. The last test runs it as a
real search and reads its report page.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import diverged_family as dv
import numpy as np
import pytest
from PIL import Image

from analysis import compare, figures, study_plots
from analysis.limits import MARGIN, Limits, outside, outside_text, robust_limits
from analysis.report import build_report

ROOT = Path(__file__).resolve().parents[1]
DIVERGED = dv.trial_id(dv.DIVERGING_LR)


def assert_readable(limits: tuple[float, float], bulk) -> None:
    """The axis shows the whole bulk and no more than the bulk's range plus the margin on each side."""
    low, high = min(bulk), max(bulk)
    pad = MARGIN * (high - low) + 1e-9
    assert low - pad <= limits[0] <= low and high <= limits[1] <= high + pad, (limits, (low, high))


def assert_valid_png(drawn) -> None:
    with Image.open(drawn.path) as im:
        im.verify()


# --- the limits themselves -------------------------------------------------------------------------------------------

def test_limits_come_from_the_bulk_and_the_references_not_from_one_value():
    bulk = [0.01, 0.04, 0.06, 0.09, 0.12, 0.14]
    limits = robust_limits([*bulk, -30.0])
    assert_readable((limits.low, limits.high), bulk)
    # A reference is always on the axis, and widens it.
    assert robust_limits(bulk, [0.3]).high > 0.3
    # Two or three values cannot outvote a wild one; the references anchor them.
    assert robust_limits([0.12, -30.0], [0.07, 0.11]).low > -1
    # Equal values: the limits still have a span; a value just beside them is inside.
    same = robust_limits([0.1, 0.1, 0.1, 0.105, -30.0])
    assert same.low < 0.1 < 0.105 < same.high and same.low > -1


def test_the_caption_counts_and_names_the_points_outside():
    limits = Limits(0.0, 0.15)
    points = outside(["a", "a", "a", "b", "c"], [-30.0, -30.0, -30.0, 0.1, 2.0], limits,
                     ["epoch 3", "epoch 4", "epoch 5", "epoch 1", "epoch 2"])
    text = outside_text(points, limits)
    assert "3 points below 0" in text and "1 point above 0.15" in text
    assert "a at -30 (epochs 3-5)" in text and "c at 2 (epoch 2)" in text and "b " not in text
    assert outside_text([], limits) == ""


# --- the search's figures on the diverged study ----------------------------------------------------------------------

def _scores(trials, exclude=DIVERGED):
    return [t.best("best_inner_ev") for t in trials if t.trial_id != exclude]


@pytest.fixture(scope="module")
def diverged_late():
    """Diverges at its third epoch: its score is its second epoch's; only its learning curve leaves the bulk."""
    return dv.records(stopped={3e-4: 2})


@pytest.fixture(scope="module")
def diverged_early():
    """Diverges from its first epoch: its score is -30 in every figure."""
    return dv.records(stopped={3e-4: 2}, diverge_at=1)


def test_learning_curves_keep_the_other_trials_readable(diverged_late, tmp_path):
    drawn = study_plots.plot_learning_curves(diverged_late, tmp_path / "lc.png", references=dv.REFERENCES)
    assert_valid_png(drawn)
    others = [r["inner_ev"] for t in diverged_late if t.trial_id != DIVERGED for r in t.results]
    mine = [r["inner_ev"] for t in diverged_late if t.trial_id == DIVERGED for r in t.results]
    assert_readable(drawn.figure.axes[0].get_ylim(), others + mine[:2] + list(dv.REFERENCES.values()))
    assert "4 points below" in drawn.caption and f"{DIVERGED} at -30 (epochs 3-6)" in drawn.caption
    assert [p.name for p in drawn.outside] == [DIVERGED] * 4
    # The ideal observers are labelled lines on the axis.
    labels = [t.get_text() for t in drawn.figure.axes[0].texts]
    assert any(label.startswith("category ideal observer 0.110") for label in labels)


def test_history_and_isolation_name_a_trial_whose_score_diverged(diverged_early, tmp_path):
    refs = list(dv.REFERENCES.values())
    bulk = _scores(diverged_early) + refs
    history = study_plots.plot_history(diverged_early, tmp_path / "history.png", dv.REFERENCES)
    assert_valid_png(history)
    left, right = history.figure.axes[:2]
    assert left.get_ylim() == right.get_ylim()  # one y axis for both panels
    assert_readable(left.get_ylim(), bulk)
    assert "1 point below" in history.caption and f"{DIVERGED} at -30." in history.caption

    table = study_plots.isolation_table(diverged_early, dv.SCIENTIFIC)
    isolation = study_plots.plot_isolation(table, dv.SCIENTIFIC, tmp_path / "isolation.png", references=dv.REFERENCES)
    assert_valid_png(isolation)
    completed = [t.best("best_inner_ev") for t in diverged_early if t.status == "completed" and t.trial_id != DIVERGED]
    assert_readable(isolation.figure.axes[0].get_ylim(), completed + refs)
    assert f"{DIVERGED} at -30." in isolation.caption and "no re-check" in isolation.caption
    assert isolation.figure.axes[0].get_xscale() == "log"  # learning rates, decades apart


def test_parallel_coordinates_colour_the_others_apart(diverged_early, tmp_path):
    study = dv.optuna_trials(diverged_early)
    names = {i: t.trial_id for i, t in enumerate(diverged_early)}
    drawn = study_plots.plot_parallel(study.trials, tmp_path / "parallel.png", names, dv.REFERENCES)
    assert_valid_png(drawn)
    colour_bar = drawn.figure.axes[1]
    completed = [t.best("best_inner_ev") for t in diverged_early if t.status == "completed" and t.trial_id != DIVERGED]
    bulk = completed + list(dv.REFERENCES.values())
    low, high = colour_bar.get_ylim()
    assert min(bulk) - 1e-9 <= low and high <= max(bulk) + 1e-9  # the colours span the bulk, not -30 to 0.14
    assert f"{DIVERGED} at -30" in drawn.caption and "colour bar" in drawn.caption


def test_isolation_draws_the_recheck_standard_errors(diverged_late, tmp_path):
    from trainables.study.recheck.stats import RecheckRow

    best = {t.config["lr"]: t for t in diverged_late if t.status == "completed"}
    rows = [RecheckRow(best[1e-3], 0.137, values=[0.135, 0.139], seed_se=0.004, image_se=0.01),
            RecheckRow(best[3e-3], 0.119, values=[0.12, 0.116], seed_se=0.004, image_se=0.01)]
    points = study_plots.recheck_points(rows, dv.SCIENTIFIC)
    assert points["all"][1e-3] == pytest.approx((0.137, rows[0].se, best[1e-3].trial_id))
    table = study_plots.isolation_table(diverged_late, dv.SCIENTIFIC)
    drawn = study_plots.plot_isolation(table, dv.SCIENTIFIC, tmp_path / "isolation.png", references=dv.REFERENCES,
                                       rechecks=points)
    ax = drawn.figure.axes[0]
    # The error bars' ends are on the axis (the SE is read, not cut off).
    low, high = ax.get_ylim()
    assert low <= min(r.mean - r.se for r in rows) and max(r.mean + r.se for r in rows) <= high
    assert "re-check's mean ± SE" in drawn.caption
    assert any("re-check" in t.get_text() for t in ax.get_legend().get_texts())


def test_the_report_page_of_a_diverged_study(diverged_early, tmp_path):
    """A study folder written without Ray (plan version 2, as the earlier release wrote it): the page has the answer
    first and every figure in a <figure> whose caption names the diverged trial."""
    dv.write_study(tmp_path, trials=diverged_early)
    page = build_report(tmp_path, "diverged", attach=False).read_text()
    assert page.index("The answer") < page.index("isolation.png") < page.index("The search") < page.index("history.png")
    captions = re.findall(r"<figure><img src='([^']+)'[^>]*><figcaption>([^<]+)</figcaption></figure>", page)
    assert {src for src, _ in captions} == {"isolation.png", "history.png", "learning_curves.png", "importance.png",
                                            "parallel.png"}
    named = {src for src, text in captions if f"{DIVERGED} at -30" in text}
    assert named == {"isolation.png", "history.png", "learning_curves.png", "parallel.png"}
    assert "img{display:block;max-width:100%;height:auto}" in page  # scaled to the page, never wider


# --- compare's chart and the final-training figures ------------------------------------------------------------------

def _trained(storage: Path, name: str, ev: float, references: dict) -> None:
    folder = storage / "train" / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({
        "ev": ev, "r_mean": 0.3, "r_median": 0.3, "noise_ceiling_ev": 0.8375, "references": references,
        "seed": 0, "data_fingerprint": "f6b84a5aa94b"}))


def test_compare_cuts_a_negative_bar_and_keeps_the_others_readable(tmp_path):
    references = {"object ideal observer": 0.0675, "category ideal observer": 0.1038}
    _trained(tmp_path, "linear_pixels", -0.5902, references)
    _trained(tmp_path, "vgg_depth", 0.1384, references)
    rows = compare.collect(tmp_path)
    assert [r[compare.OBSERVER] for r in rows] == [None, "object ideal observer", "category ideal observer", None]
    drawn = compare.plot_bars(rows, tmp_path / "compare.png")
    assert_valid_png(drawn)
    ax = drawn.figure.axes[0]
    assert_readable(ax.get_ylim(), [0.0, 6.75, 10.38, 13.84, 83.75])  # the bars, their base and the ceiling
    texts = [t.get_text() for t in ax.texts]
    assert "-59.0 %" in texts and "13.8" in texts  # the cut bar says its value; the others theirs
    cut = min(ax.patches, key=lambda p: p.get_height())
    assert cut.get_height() == pytest.approx(ax.get_ylim()[0])  # drawn to the axis' edge, not to -59
    assert "linear_pixels at -59 %" in drawn.caption
    # The references are labelled lines, found by the rows' data, not by their names.
    assert {"noise ceiling 83.8 %", "object ideal observer 6.8 %", "category ideal observer 10.4 %"} <= set(texts)
    # The table keeps its columns: the rows' observer field stays out of it.
    compare.write_csv(rows, tmp_path / "compare.csv")
    assert (tmp_path / "compare.csv").read_text().splitlines()[0] == ",".join(compare.COLUMNS)


def test_final_training_figures_keep_to_the_bulk(tmp_path):
    rng = np.random.default_rng(0)
    ev = rng.normal(0.14, 0.08, 168)
    ev[17] = -30.0  # one site predicted wildly
    r = np.sqrt(np.clip(ev, 0, 1))
    ceiling = rng.normal(0.84, 0.05, 168)
    refs = {"object ideal observer": 0.0675, "category ideal observer": 0.1038}
    drawn = figures.plot_site_distributions(r, ev, tmp_path / "sites.png", ceiling, references=refs)
    assert_valid_png(drawn)
    ev_axis = drawn.figure.axes[1]
    assert_readable(ev_axis.get_xlim(), [*np.delete(ev, 17), *ceiling, *refs.values()])
    assert "site 17 at -30" in drawn.caption
    assert any(t.get_text().startswith("noise ceiling") for t in ev_axis.texts)

    history = [{"epoch": e, "train_loss": 1.0 - 0.02 * e, "inner_ev": 0.02 * e} for e in range(1, 7)]
    history[3]["inner_ev"] = history[4]["inner_ev"] = -30.0
    curve = figures.plot_learning_curve(history, 6, tmp_path / "curve.png", references=refs)
    assert_valid_png(curve)
    ev_twin = curve.figure.axes[1]
    assert_readable(ev_twin.get_ylim(), [0.02, 0.04, 0.06, 0.12, *refs.values()])
    assert "inner EV at -30 (epochs 4-5)" in curve.caption

    objects = np.repeat([f"cat{c}_obj{o}" for c in range(3) for o in range(2)], 5)
    measured = rng.normal(1.0, 0.5, (len(objects), 4))
    predicted = measured + rng.normal(0, 0.2, measured.shape)
    predicted[7, :] = 500.0  # a prediction that blew up
    responses = figures.plot_site_responses(measured, predicted, objects, np.array([0.5, 0.4, 0.3, 0.2]),
                                            tmp_path / "responses.png")
    assert_valid_png(responses)
    for ax in responses.figure.axes:
        assert ax.get_ylim()[1] < 10
    assert "3 predictions outside their axes" in responses.caption and "at 500" in responses.caption
    rdm = figures.plot_rdms(measured, predicted, objects, tmp_path / "rdm.png")
    assert_valid_png(rdm)
    assert "Spearman" in rdm.caption


# --- a real search over the diverged family --------------------------------------------------------------------------

@pytest.mark.slow
def test_the_report_of_a_real_search_with_a_diverged_trial(tmp_path):
    from searchutil import TINY, run_search

    storage = tmp_path / "runs"
    # The checkout's code in the search's processes, wherever the package is installed from.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = run_search("--space", "diverged", "--storage", str(storage), "--num-samples", str(len(dv.LRS)),
                      "--scheduler", "fifo", *TINY, script=str(ROOT / "tests" / "diverged_family.py"), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    params = {json.loads(p.read_text())["lr"]: p.parent.name.removeprefix("trial_")
              for p in (storage / "diverged").glob("trial_*/params.json")}
    assert sorted(params) == sorted(dv.LRS)
    diverged = params[dv.DIVERGING_LR]
    page = build_report(storage, "diverged").read_text()
    captions = dict(re.findall(r"<figure><img src='([^']+)'[^>]*><figcaption>([^<]+)</figcaption></figure>", page))
    assert {"history.png", "learning_curves.png", "parallel.png", "isolation.png"} <= set(captions)
    assert f"{diverged} at -30 (epochs 3-6)" in captions["learning_curves.png"]
