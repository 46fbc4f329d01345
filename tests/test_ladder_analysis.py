"""The ladder's analysis (analysis/ladder/): its numbers, its tables, its figures and its page, from synthetic rungs.

Quick tier: no Ray, no training. A rung's predictions are the measured responses plus noise of a known size
(``pred = y + sigma * sd(y) * noise`` has EV about ``1 - sigma^2``), so the order of the rows, the sign of their
differences and of an ensemble's gain are known before they are computed. ``tests/ladder_synthetic.py`` builds the
report's ladder (its demo writes a complete folder).
"""

from __future__ import annotations

import csv
import html
import math
import re
from pathlib import Path

import ladder_synthetic as ls
import numpy as np
import pytest
from PIL import Image
from scipy.stats import pearsonr
from sklearn.metrics import explained_variance_score

from analysis.ladder import stats
from analysis.ladder.figures import plot_layers, plot_rdms, plot_sites, rdm_rows
from analysis.ladder.output import write_ladder
from analysis.ladder.page import INDEX, SITE_RESPONSES
from analysis.ladder.rows import ENSEMBLE, MODEL, SEED_ENSEMBLE, best_row, build_rows, compare_rows
from analysis.ladder.rungs import Ensemble, Run, Rung, ValData
from analysis.ladder.sites import extreme_sites, site_table
from analysis.ladder.steps import ladder_steps, step_lines
from analysis.ladder.table import CSV_COLUMNS, format_table, notes
from analysis.limits import MARGIN
from search_spaces import ladder_group

RESAMPLES = 400  # enough for intervals to order the rows here; the command's default is 1000


@pytest.fixture(scope="module")
def val() -> ValData:
    return ls.val_data(n_sites=48, images_per_object=4)


def noisy_rung(val: ValData, root: Path, label: str, sigma: float, seeds: int = 1, seed: int = 0,
               shared: float = 0.0, study: str = "study", group: str = "group", axes: dict | None = None,
               deterministic: bool | None = None) -> Rung:
    """Predictions ``y + sigma * sd(y) * noise`` per seed: EV about ``1 - sigma^2``; ``shared``: the share of the
    noise's variance that the seeds have in common."""
    rng = np.random.default_rng(seed)
    sd = val.y.std(axis=0)
    common = rng.normal(size=val.y.shape)
    runs = []
    for k in range(seeds):
        noise = math.sqrt(shared) * common + math.sqrt(1 - shared) * rng.normal(size=val.y.shape)
        pred = val.y + sigma * sd * noise
        runs.append(Run(seed=k, folder=root / label / f"seed_{k}", pred_val=pred, metrics={}))
    return Rung(study=study, group=group, label=label, axes=dict(axes or {}), trial_id=f"t{seed}",
                config_path=root / label / "config.json", source="search",
                deterministic=seeds == 1 if deterministic is None else deterministic, runs=runs)


# --- the numbers -----------------------------------------------------------------------------------------------------

def test_ev_corr_and_ceiled_ev_are_the_exact_site_averages(val, tmp_path):
    rung = noisy_rung(val, tmp_path, "net", 0.8, seeds=3, seed=1)
    model, ensemble = build_rows([rung], val, resamples=50)
    evs = [explained_variance_score(val.y, r.pred_val) for r in rung.runs]
    assert model.ev_per_seed == pytest.approx(evs, abs=1e-12)
    assert model.ev == pytest.approx(np.mean(evs), abs=1e-12)
    assert model.ev_sd == pytest.approx(np.std(evs, ddof=1), abs=1e-12)
    mean_pred = np.mean([r.pred_val for r in rung.runs], axis=0)
    assert ensemble.kind == SEED_ENSEMBLE and ensemble.ev == pytest.approx(
        explained_variance_score(val.y, mean_pred), abs=1e-12)
    r = [np.mean([pearsonr(val.y[:, s], run.pred_val[:, s])[0] for s in range(val.y.shape[1])]) for run in rung.runs]
    assert model.r == pytest.approx(np.mean(r), abs=1e-10)
    kept = val.ceiling >= stats.CEILING_FLOOR
    ceiled = [np.mean(explained_variance_score(val.y, run.pred_val, multioutput="raw_values")[kept]
                      / val.ceiling[kept]) for run in rung.runs]
    assert model.ceiled == pytest.approx(np.mean(ceiled), abs=1e-12)
    assert 0 < kept.sum() < len(kept), "the fixture's ceilings straddle the floor"


def test_ceiled_ev_leaves_out_the_sites_below_the_floor_and_the_notes_count_them():
    ev, ceiling = np.array([0.2, 0.1, 0.05, 0.3]), np.array([0.4, 0.05, 0.1, 0.099])
    assert stats.ceiled_ev(ev, ceiling) == pytest.approx((0.2 / 0.4 + 0.05 / 0.1) / 2)
    assert math.isnan(stats.ceiled_ev(ev, None)) and math.isnan(stats.ceiled_ev(ev, np.zeros(4)))
    y = np.random.default_rng(0).normal(size=(8, 4))
    val = ValData(y, np.repeat(["a_0", "a_1", "b_0", "b_1"], 2), ceiling, {}, "fp")
    rows = build_rows([Rung("s", "g", "m", {}, "t", Path("c.json"), "search", True,
                            [Run(0, Path("."), y * 0.5, {})])], val, resamples=20)
    assert "over the 2 sites whose ceiling is at least 0.1; 2 sites left out" in " ".join(notes(rows, val))


def test_what_a_study_said_when_it_started_is_said_once_under_every_form_of_the_table(val, tmp_path):
    fallback = "ImageNet weights not in the torch cache for vgg11_bn: those backbones run with random weights"
    rungs = [noisy_rung(val, tmp_path, "vgg_depth: vgg_blocks=7", 0.8, seeds=2, study="vgg_depth"),
             noisy_rung(val, tmp_path, "readout", 0.9, study="layer_sweep")]
    rungs[0].notes = (fallback,)
    rows = build_rows(rungs, val, resamples=20)
    # A row's name in sites.csv and steps.csv: its label, once it names its study.
    assert [r.name for r in rows if r.kind == MODEL] == ["vgg_depth: vgg_blocks=7", "layer_sweep: readout"]
    said = f"vgg_depth's search: {fallback}."
    assert notes(rows, val).count(said) == 1 and format_table(rows, val).count(said) == 1
    written = write_ladder(rungs, val, tmp_path / "ladder")
    assert (tmp_path / "ladder" / "table.md").read_text().count(said) == 1
    assert written.page.read_text().count(html.escape(said)) == 1


def test_the_sd_over_seeds_is_nan_for_one_seed():
    assert stats.mean_sd([0.3])[0] == 0.3 and math.isnan(stats.mean_sd([0.3])[1])
    assert stats.mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)


def test_the_resamples_are_of_whole_objects_and_every_object_once_gives_the_ev(val):
    weights = stats.object_resamples(val.objects, 30, seed=3)
    n_objects = len(np.unique(val.objects))
    assert weights.shape == (30, n_objects) and (weights.sum(axis=1) == n_objects).all()
    assert np.array_equal(weights, stats.object_resamples(val.objects, 30, seed=3))
    pred = val.y + np.random.default_rng(0).normal(size=val.y.shape)
    once = stats.resampled_ev(val.y, pred, val.objects, np.ones((1, n_objects)))
    assert once[0] == pytest.approx(explained_variance_score(val.y, pred), abs=1e-10)


def test_less_noise_beats_more_and_the_difference_carries_its_paired_interval(val, tmp_path):
    worse = noisy_rung(val, tmp_path, "sigma 0.9", 0.9, seed=1)
    better = noisy_rung(val, tmp_path, "sigma 0.45", 0.45, seed=2)
    twin = noisy_rung(val, tmp_path, "sigma 0.45 again", 0.45, seed=3)
    rows = build_rows([worse, better, twin], val, resamples=RESAMPLES)
    for row, sigma in zip(rows, (0.9, 0.45, 0.45)):
        assert row.ev == pytest.approx(1 - sigma**2, abs=0.05)
        assert row.interval[0] <= row.ev <= row.interval[1]
    assert rows[0].above is None
    assert rows[1].above.value == pytest.approx(rows[1].ev - rows[0].ev)
    assert rows[1].above.low > 0 and rows[1].above.excludes_zero and rows[1].above_label == "sigma 0.9"
    # Equal noise, other draws: the images cannot tell the two apart.
    assert rows[2].above.low < 0 < rows[2].above.high and not rows[2].above.excludes_zero
    assert compare_rows(rows[1], rows[0]) == rows[1].above


def test_a_paired_interval_is_narrower_than_an_unpaired_one(val, tmp_path):
    # Two models that miss much the same images (as models of one data set do): most of their noise in common.
    a = noisy_rung(val, tmp_path, "a", 0.6, seed=4)
    b = noisy_rung(val, tmp_path, "b", 0.7, seed=5)
    common = (a.runs[0].pred_val - val.y) / 0.6
    b.runs[0].pred_val = val.y + 0.7 * (math.sqrt(0.8) * common + math.sqrt(0.2) * (b.runs[0].pred_val - val.y) / 0.7)
    rows = build_rows([a, b], val, resamples=RESAMPLES)
    paired = rows[1].above
    other = stats.object_resamples(val.objects, RESAMPLES, seed=99)  # b on resamples of its own: unpaired
    unpaired = stats.difference(rows[1].ev, rows[0].ev, stats.resampled_ev(val.y, b.runs[0].pred_val, val.objects,
                                                                           other), rows[0].samples)
    assert paired.high - paired.low < 0.5 * (unpaired.high - unpaired.low)


def test_an_ensemble_of_independent_seeds_gains_over_its_single_models(val, tmp_path):
    rung = noisy_rung(val, tmp_path, "net", 0.7, seeds=3, seed=6)
    model, ensemble = build_rows([rung], val, resamples=RESAMPLES)
    assert ensemble.label == "net, ensemble of 3 seeds" and ensemble.seeds == [0, 1, 2]
    assert ensemble.gain.value == pytest.approx(ensemble.ev - np.mean(model.ev_per_seed), abs=1e-12)
    # Independent noise of variance s^2 averaged over 3 seeds: EV 1 - s^2 / 3 against 1 - s^2.
    assert ensemble.gain.value == pytest.approx(0.49 * 2 / 3, abs=0.05)
    assert ensemble.gain.low > 0 and ensemble.gain.excludes_zero
    assert math.isnan(ensemble.ev_sd) and ensemble.above is None


def test_rows_come_in_the_table_order_with_the_ensembles_after_their_rung_and_study(val, tmp_path):
    rungs = [noisy_rung(val, tmp_path, "pixels", 0.95, seed=7, study="px", group="pixels"),
             noisy_rung(val, tmp_path, "net a", 0.6, seeds=2, seed=8, study="net", group="networks"),
             noisy_rung(val, tmp_path, "net b, one seed", 0.65, seeds=1, seed=9, study="net", group="networks",
                        deterministic=False),
             noisy_rung(val, tmp_path, "other", 0.8, seeds=2, seed=10, study="other", group="networks")]
    top = Ensemble("top-2 configs x 2 seeds", "net", rungs[1].runs + noisy_rung(
        val, tmp_path, "net c", 0.62, seeds=2, seed=11).runs)
    rows = build_rows(rungs, val, [top], resamples=50)
    assert [(r.label, r.kind) for r in rows] == [
        ("pixels", MODEL), ("net a", MODEL), ("net a, ensemble of 2 seeds", SEED_ENSEMBLE),
        ("net b, one seed", MODEL), ("top-2 configs x 2 seeds", ENSEMBLE), ("other", MODEL),
        ("other, ensemble of 2 seeds", SEED_ENSEMBLE)]
    # A model is compared with the model above it, the ensembles between them skipped.
    assert [r.above_label for r in rows if r.kind == MODEL] == ["", "pixels", "net a", "net b, one seed"]
    ensemble = rows[4]
    members = [explained_variance_score(val.y, m.pred_val) for m in top.members]
    assert ensemble.group == "networks" and len(ensemble.seeds) == 4
    assert ensemble.gain.value == pytest.approx(ensemble.ev - np.mean(members), abs=1e-12)
    assert best_row(rows).label == "net a"


def test_runs_of_another_validation_set_are_refused(val, tmp_path):
    rung = noisy_rung(val, tmp_path, "short", 0.5)
    rung.runs[0].pred_val = rung.runs[0].pred_val[:-1]
    with pytest.raises(ValueError, match="rung study: short, seed 0: predictions of shape"):
        build_rows([rung], val, resamples=10)
    rung = noisy_rung(val, tmp_path, "other data", 0.5)
    rung.runs[0].metrics = {"data_fingerprint": "another"}
    with pytest.raises(ValueError, match="trained on data another"):
        build_rows([rung], val, resamples=10)


# --- tables ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ladder(val, tmp_path_factory):
    """The report's ladder at a small size (31 model rows, 3 seed ensembles, a top-3 ensemble), written whole."""
    out = tmp_path_factory.mktemp("ladder")
    rungs, ensembles = ls.ladder(out / "runs", val, seeds=2, top_k=2)
    best = rungs[-1].runs[0].folder
    Image.new("RGB", (40, 20), "white").save(best / SITE_RESPONSES)  # as the best run's final training drew it
    written = write_ladder(rungs, val, out, ensembles, resamples=200)
    return out, rungs, written


def test_the_table_files_have_every_column_and_row(ladder, val):
    out, rungs, written = ladder
    assert len(written.rows) == 31 + 3 + 1
    with (out / "table.csv").open() as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == CSV_COLUMNS
    assert [t["row"] for t in table[:len(written.rows)]] == [r.label for r in written.rows]
    assert [t["row"] for t in table[len(written.rows):]] == [*val.references, "noise ceiling"]
    first_layer = next(t for t in table if t["row"] == "block1, imagenet")
    assert first_layer["group"] == "task-driven features" and first_layer["study"] == "layer_sweep"
    assert first_layer["row above"] == "ridge, PCA 1000" and first_layer["config file"].endswith("config.json")
    assert float(first_layer["EV 95% low"]) <= float(first_layer["EV"]) <= float(first_layer["EV 95% high"])
    md = (out / "table.md").read_text().splitlines()
    assert md[0].startswith("| group | row | study | EV (%) | SD | 95 % interval | ceiled EV (%) | Corr | Δ EV")
    assert sum(line.startswith("| pixels |") for line in md) == 1  # the group named on its first row only
    assert any("gain +" in line for line in md)
    lines = format_table(written.rows, val)
    assert "pixels" in lines and "fine-tuned" in lines
    assert any(line.strip().startswith("+ ensemble of 2 seeds") for line in lines)
    assert any(line.strip().startswith("+ top-2 configs x 2 seeds, averaged") for line in lines)
    assert lines[-2].startswith("for scale: object ideal observer 6.94")


def test_the_site_table_has_every_site_and_row_and_the_best_and_worst_sites(ladder, val):
    out, _, written = ladder
    rows = written.rows
    with (out / "sites.csv").open() as f:
        lines = list(csv.reader(f))
    assert len(lines) == 1 + val.y.shape[1] and all(len(line) == 2 + 3 * len(rows) for line in lines)
    assert lines[0][:5] == ["site", "noise ceiling EV", "EV ridge_pixels: linear, no PCA",
                            "r ridge_pixels: linear, no PCA", "EV/ceiling ridge_pixels: linear, no PCA"]
    columns, table = site_table(rows, val)
    low = np.flatnonzero(val.ceiling < stats.CEILING_FLOOR)
    assert all(lines[1 + s][4] == "" for s in low)
    assert np.allclose(table[:, 2], rows[0].ev_per_site) and float(lines[1][2]) == pytest.approx(
        rows[0].ev_per_site[0], rel=1e-5)
    best, worst = extreme_sites(rows[-1], val)
    order = np.argsort(rows[-1].ev_per_site)
    assert [s.site for s in best] == list(order[::-1][:5]) and [s.site for s in worst] == list(order[:5])


# --- figures ---------------------------------------------------------------------------------------------------------

def assert_readable(limits: tuple[float, float], bulk) -> None:
    """The axis shows the whole bulk and no more than the bulk's range plus the margin on each side (and the
    references, which the callers include in ``bulk``)."""
    low, high = min(bulk), max(bulk)
    pad = MARGIN * (high - low) + 1e-9
    assert low - pad <= limits[0] <= low and high <= limits[1] <= high + pad, (limits, (low, high))


@pytest.fixture(scope="module")
def wild(val, tmp_path_factory):
    """A small ladder in which one layer's readout and one network diverged: EV about -5."""
    root = tmp_path_factory.mktemp("wild")
    rungs = [noisy_rung(val, root, "pixels", 0.97, seed=20, study="px", group="pixels")]
    for k, layer in enumerate(["l1", "l2", "l3", "l4"]):
        for weights, sigma in (("imagenet", 0.85 - 0.05 * k), ("random", 0.95)):
            sigma = math.sqrt(6.0) if (layer, weights) == ("l3", "imagenet") else sigma
            rungs.append(noisy_rung(val, root, f"{layer}, {weights}", sigma, seed=21 + 2 * k + len(weights),
                                    study="layer_sweep", group="features", axes={"layer": layer,
                                                                                 "weights": weights}))
    rungs += [noisy_rung(val, root, "net", 0.7, seeds=2, seed=40, study="net", group="networks"),
              noisy_rung(val, root, "diverged net", math.sqrt(6.0), seeds=1, seed=41, study="net2",
                         group="networks", deterministic=False)]
    return root, build_rows(rungs, val, resamples=100)


def test_figure_1_keeps_the_layers_readable_when_one_layer_diverged(wild, val):
    root, rows = wild
    drawn = plot_layers(rows, val, root / "layers.png")
    layer_evs = [100 * v for r in rows if r.rung.axes.get("layer") and r.label != "l3, imagenet"
                 for v in (r.ev, *r.interval)]  # the lines and their bands
    assert min(100 * r.ev for r in rows if r.label == "l3, imagenet") < -400
    references = [100 * v for v in val.references.values()] + [100 * val.ceiling.mean()]
    others = [100 * r.ev for r in rows if r.label in ("pixels", "net")]
    assert_readable(drawn.figure.axes[0].get_ylim(), layer_evs + references + others)
    assert re.search(r"1 value below [\d.]+ %: l3, imagenet at -[45]\d\d %", drawn.caption)
    with Image.open(drawn.path) as im:
        im.verify()
    assert plot_layers([r for r in rows if not r.rung.axes], val, root / "none.png") is None


def test_figure_2a_keeps_the_boxes_readable_when_one_row_diverged(wild, val):
    root, rows = wild
    drawn = plot_sites(rows, val, root / "sites.png")
    r_axis, ev_axis = drawn.figure.axes[:2]
    low, high = ev_axis.get_xlim()
    tame = [r for r in rows if r.ev > -1]
    assert low > -60 and high < 100 * val.ceiling.max() + 20
    assert low <= min(np.percentile(100 * r.ev_per_site, 25) for r in tame)
    assert re.search(r"diverged net at -[45]\d\d", drawn.caption) and re.search(r"l3, imagenet at -[45]\d\d",
                                                                                  drawn.caption)
    assert r_axis.get_xlim()[1] < 1.2
    assert len(r_axis.get_yticklabels()) == len(rows) + 1  # every row and the noise ceiling


def test_figure_2b_shows_the_measured_rdm_and_the_best_of_each_group_when_rows_are_many(wild, ladder, val):
    root, rows = wild
    few = rdm_rows(rows[:3])
    assert few == rows[:3]
    drawn = plot_rdms(rows, val, root / "rdms.png")
    shown = rdm_rows(rows)
    assert [r.group for r in shown] == ["pixels", "features", "networks"]
    titled = [ax for ax in drawn.figure.axes if ax.get_title()]
    assert titled[0].get_title() == "measured" and len(titled) == 1 + len(shown)
    assert all(re.search(r"ρ = -?\d\.\d\d", ax.get_title()) for ax in titled[1:])


# --- the page --------------------------------------------------------------------------------------------------------

def test_the_page_answers_first_then_shows_each_figure_with_its_caption(ladder, val):
    out, _, written = ladder
    page = (out / INDEX).read_text()
    figures = re.findall(r"<figure><img src='([^']+)'[^>]*><figcaption>([^<]+)</figcaption></figure>", page)
    assert [name for name, _ in figures] == ["layers.png", "sites.png", "rdms.png", SITE_RESPONSES]
    assert all((out / name).is_file() and caption.strip() for name, caption in figures)
    assert page.count("<figure>") == page.count("<figcaption>") == 4
    assert page.index("Best model:") < page.index("<table") < page.index("<figure>")
    assert "object ideal observer 6.94 %" in page and "noise ceiling" in page
    assert "resnet34, mlp 512 x 2's 5 best and 5 worst sites" in page
    assert "max-width:100%" in page and "http" not in page.split("<body>")[1]  # scaled images, nothing fetched
    assert [p.name for p in written.files] == ["table.md", "table.csv", "sites.csv", "steps.csv", "layers.png",
                                               "sites.png", "rdms.png", SITE_RESPONSES, INDEX]


def test_a_ladder_without_repetitions_or_layers_still_writes_everything(tmp_path):
    val = ls.val_data(n_sites=12, images_per_object=3, ceiling=False)
    rungs = [noisy_rung(val, tmp_path, "a", 0.9, seed=1), noisy_rung(val, tmp_path, "b", 0.6, seeds=2, seed=2)]
    written = write_ladder(rungs, val, tmp_path / "out", resamples=50)
    assert [d.path.name for d in written.figures] == ["sites.png", "rdms.png"]
    assert all(math.isnan(r.ceiled) for r in written.rows)
    assert "Ceiled EV: none" in (tmp_path / "out" / "table.md").read_text()
    assert "<figcaption>" in written.page.read_text()


# --- the report's ordering -------------------------------------------------------------------------------------------

def test_the_report_s_ordering_steps_from_each_level_s_best_row_to_the_next(ladder, val):
    out, _, written = ladder
    steps = written.steps
    assert [(s.lower.name, s.upper.name) for s in steps] == [
        ("pixels", "best random-weights layer"), ("best random-weights layer", "shallow CNN"),
        ("shallow CNN", "best ImageNet layer"), ("best ImageNet layer", "fine-tuned")]
    # Each level is its kind's best model row: the ImageNet layer the best of 8, fine-tuned the better network.
    assert [s.upper_row.label for s in steps] == ["block8, random", "shallow_cnn, width x2", "block16, imagenet",
                                                  "resnet34, mlp 512 x 2"]
    pixels = [r for r in written.rows if r.study == "ridge_pixels"]
    assert steps[0].lower_row is max(pixels, key=lambda r: r.ev)
    for s in steps:
        assert s.difference == compare_rows(s.upper_row, s.lower_row)
        assert s.verdict == "holds" and s.difference.low > 0
    with (out / "steps.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [t["upper level"] for t in table] == [s.upper.name for s in steps]
    assert float(table[0]["difference"]) == pytest.approx(steps[0].difference.value)
    page = (out / INDEX).read_text()
    assert page.index("<table") < page.index("The report's ordering") < page.index("<figure>")


def test_a_step_the_data_contradict_is_reversed_and_a_missing_level_is_skipped(val, tmp_path):
    rungs = [ls.make_rung(tmp_path, val, "ridge_pixels", ladder_group("ridge_pixels"), "ridge", 0.30,
                          {"regression": "ridge", "pca_components": 0}, seed=1),
             ls.make_rung(tmp_path, val, "shallow_cnn", ladder_group("shallow_cnn"), "shallow", 0.05, seeds=2,
                          deterministic=False, seed=2),
             ls.make_rung(tmp_path, val, "vgg_depth", ladder_group("vgg_depth"), "vgg", 0.05, seeds=2,
                          deterministic=False, seed=2)]  # the shallow CNN's predictions: a difference of 0
    steps = ladder_steps(build_rows(rungs, val, resamples=RESAMPLES))
    assert [(s.lower.name, s.upper.name) for s in steps] == [("pixels", "shallow CNN"), ("shallow CNN", "fine-tuned")]
    assert steps[0].verdict == "reversed" and steps[0].difference.high < 0
    assert steps[1].verdict == "not resolved" and steps[1].difference.low <= 0 <= steps[1].difference.high
    assert step_lines(steps)[0].startswith("pixels (ridge, 30.") and step_lines(steps)[0].endswith("reversed")
