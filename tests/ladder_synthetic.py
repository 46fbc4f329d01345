"""Synthetic ladders for the ladder's analysis: rungs whose predictions have known EVs, written as final trainings.

A site's measured response is a category term, an object term and an image term. A
rung predicts ``g * (y + tau * noise)`` per site (around the site's mean), the noise
partly shared by the rung's seeds and partly each seed's own: for a target EV ``e`` in
(0, 1) the optimal gain ``g = e`` gives EV ``e`` and Pearson r ``sqrt(e)``, as a
well-regularised readout would; a target EV at or below 0 over-scales a weak
prediction (an unregularised fit of the pixels). Independent seed noise makes a
seeds' ensemble better than its single models.

    python tests/ladder_synthetic.py OUT    # a complete example output folder (about 30 rows)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from analysis.ladder.rungs import Ensemble, Run, Rung, ValData  # noqa: E402
from search_spaces import ladder_group  # noqa: E402

CATEGORIES = ("ellipse", "triangle", "square", "pentagon", "hexagon", "star", "cross", "blob")
REFERENCES = {"object ideal observer": 0.0694, "category ideal observer": 0.1096}
FINGERPRINT = "synthetic-ladder"
# The share of a seed's prediction noise that is its own (the rest its config's, shared by every seed).
SEED_SHARE = 0.3
# A weak prediction's squared correlation, for target EVs at or below 0.
WEAK_R2 = 0.04


def val_data(n_sites: int = 168, objects_per_category: int = 8, images_per_object: int = 5, seed: int = 0,
             ceiling: bool = True) -> ValData:
    """A validation set: ``8 x objects_per_category`` objects, ``images_per_object`` images each.

    Returns
    -------
    ValData
        ``y`` (n_images, n_sites) of rates around 10, ceilings uniform in [0.03, 0.95] (a few below the ceiled
        EV's floor), the report's ideal observers' EVs as references.
    """
    rng = np.random.default_rng(seed)
    n_obj = len(CATEGORIES) * objects_per_category
    objects = np.array([f"{CATEGORIES[o // objects_per_category]}_{o % objects_per_category}"
                        for o in range(n_obj) for _ in range(images_per_object)])
    # Categories and objects explain about a tenth of a site's variance, as the ideal observers say of IT's.
    category = rng.normal(0, 0.3, (len(CATEGORIES), n_sites))
    obj = rng.normal(0, 0.2, (n_obj, n_sites))
    which = np.repeat(np.arange(n_obj), images_per_object)
    y = 10 + rng.uniform(0.5, 2.0, n_sites) * (category[which // objects_per_category] + obj[which]
                                               + rng.normal(0, 1.0, (len(which), n_sites)))
    return ValData(y=y, objects=objects, ceiling=rng.uniform(0.03, 0.95, n_sites) if ceiling else None,
                   references=dict(REFERENCES), fingerprint=FINGERPRINT)


def site_targets(val: ValData, ev: float) -> np.ndarray:
    """Per-site target EVs around ``ev``: sites with a higher ceiling are predicted better.

    Returns
    -------
    array, shape (n_sites,)
    """
    c = val.ceiling if val.ceiling is not None else np.full(val.y.shape[1], 0.5)
    return np.minimum(ev * c / c.mean(), 0.95)


def predictions(val: ValData, ev: float, n_seeds: int, seed: int, seed_share: float = SEED_SHARE,
                common: int | None = None, seed_sd: float = 0.005) -> list[np.ndarray]:
    """``n_seeds`` predictions of EV about ``ev``, their noise ``seed_share`` each seed's own.

    ``common``: the seed of noise that configs of one study share (80 % of the config's own), as configs of one
    search miss much the same images; None: the config's noise is its own.

    Returns
    -------
    list of arrays, shape (n_images, n_sites), float32 (as ``predictions_val.npy``)
    """
    rng = np.random.default_rng(seed)
    y = val.y
    mean, v = y.mean(axis=0), y.var(axis=0)
    shared = rng.normal(size=y.shape)
    if common is not None:
        shared = np.sqrt(0.2) * shared + np.sqrt(0.8) * np.random.default_rng([common, 1]).normal(size=y.shape)
    out = []
    for _ in range(n_seeds):
        # Seeds of a network land a little apart (an SD of about half a point of EV), as trainings do.
        e = site_targets(val, ev + (rng.normal(0, seed_sd) if n_seeds > 1 else 0.0))
        r2 = np.maximum(e, WEAK_R2)
        t = 1 / r2 - 1  # tau^2 / var(y)
        gain = (1 + np.sqrt(np.maximum(1 - (1 + t) * e, 0))) / (1 + t)
        noise = np.sqrt(1 - seed_share) * shared + np.sqrt(seed_share) * rng.normal(size=y.shape)
        out.append((mean + gain * (y - mean + np.sqrt(t * v) * noise)).astype(np.float32))
    return out


def write_run(folder: Path, val: ValData, pred: np.ndarray, seed: int, config: dict) -> Run:
    """A final training's folder as ``trainables.train`` leaves it (``metrics.json``, ``config.json``,
    ``predictions_val.npy``), and its :class:`Run`."""
    from trainables.core.metrics import summarize  # the scores train writes, from the project's own metrics

    folder.mkdir(parents=True, exist_ok=True)
    metrics = {**summarize(val.y, pred), "references": dict(val.references), "seed": seed,
               "data_fingerprint": val.fingerprint}
    if val.ceiling is not None:
        metrics["noise_ceiling_ev"] = float(np.mean(val.ceiling))
        metrics["noise_ceiling_ev_per_site"] = [float(c) for c in val.ceiling]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "config.json").write_text(json.dumps({**config, "seed": seed}))
    np.save(folder / "predictions_val.npy", pred)
    return Run(seed=seed, folder=folder, pred_val=pred, metrics=metrics)


def make_rung(root: Path, val: ValData, study: str, group: str, label: str, ev: float, axes: dict | None = None,
              seeds: int = 1, deterministic: bool = True, seed: int = 0, config: dict | None = None,
              seed_share: float = SEED_SHARE, common: int | None = None) -> Rung:
    """A rung of target EV ``ev``, its runs written under ``root/<study>/<label>/seed_<k>``."""
    name = label.replace(", ", "_").replace(" ", "_")
    folder = root / study / name
    config = {"model": "ridge" if deterministic else "network", **(axes or {}), **(config or {})}
    runs = [write_run(folder / f"seed_{k}", val, pred, k, config)
            for k, pred in enumerate(predictions(val, ev, seeds, seed, seed_share, common))]
    (folder / "config.json").write_text(json.dumps(config))
    return Rung(study=study, group=group, label=label, axes=dict(axes or {}), trial_id=f"{seed:08x}",
                config_path=folder / "config.json", source="re-check" if not deterministic else "search",
                deterministic=deterministic, runs=runs)


PIXELS = {"linear": [-0.62, -0.27, -0.11, -0.03, 0.005, 0.012], "ridge": [0.018, 0.022, 0.027, 0.031, 0.034, 0.03]}
PCA = [0, 50, 100, 200, 500, 1000]
LAYERS = ["block1", "block3", "block5", "block8", "block12", "block16", "block18", "avgpool"]
LAYER_EV = {"imagenet": [0.05, 0.09, 0.14, 0.2, 0.26, 0.31, 0.28, 0.22],
            "random": [0.04, 0.06, 0.07, 0.075, 0.07, 0.06, 0.05, 0.04]}
NETWORKS = [("shallow_cnn", "shallow_cnn, width x2", 0.18), ("vgg_depth", "vgg11_bn, 5 blocks", 0.27),
            ("decoder_head", "resnet34, mlp 512 x 2", 0.36)]


def ladder(root: Path, val: ValData, seeds: int = 3, top_k: int = 3) -> tuple[list[Rung], list[Ensemble]]:
    """The report's ladder: 12 pixel rows, 8 layers x 2 weights, 3 networks over ``seeds`` seeds, and the best
    study's top-``top_k`` configs as an ensemble."""
    rungs, k = [], 0
    for regression, evs in PIXELS.items():
        for pca, ev in zip(PCA, evs):
            label = f"{regression}, " + (f"PCA {pca}" if pca else "no PCA")
            rungs.append(make_rung(root, val, "ridge_pixels", ladder_group("ridge_pixels"), label, ev,
                                   {"regression": regression, "pca_components": pca}, seed=k))
            k += 1
    for weights, evs in LAYER_EV.items():
        for layer, ev in zip(LAYERS, evs):
            rungs.append(make_rung(root, val, "layer_sweep", ladder_group("layer_sweep"), f"{layer}, {weights}", ev,
                                   {"layer": layer, "weights": weights}, seed=k))
            k += 1
    for study, label, ev in NETWORKS:
        rungs.append(make_rung(root, val, study, ladder_group(study), label, ev, seeds=seeds, deterministic=False,
                               seed=k, common=k))
        k += 1
    study, _, best = NETWORKS[-1]
    members = []
    for i in range(top_k):
        members += make_rung(root / "ensemble", val, study, "", f"config {i + 1}", best - 0.008 * i, seeds=seeds,
                             deterministic=False, seed=100 + i, common=k - 1).runs
    return rungs, [Ensemble(label=f"top-{top_k} configs x {seeds} seeds, averaged", study=study, members=members)]


def main(argv=None) -> int:
    # The demo alone draws and writes: the tests import this module for its rungs.
    import logging

    from analysis import figures
    from analysis.ladder.output import write_ladder

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path((argv or sys.argv[1:])[0])
    val = val_data()
    rungs, ensembles = ladder(out / "runs", val)
    best = max(rungs, key=lambda r: np.mean([run.metrics["ev"] for run in r.runs]))
    for run in best.runs:  # Figure 3, as each final training draws it
        figures.plot_site_responses(val.y, run.pred_val, val.objects, np.array(run.metrics["ev_per_site"]),
                                    run.folder / "site_responses.png")
    write_ladder(rungs, val, out, ensembles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
