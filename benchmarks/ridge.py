"""Cross-validated ridge: the fast solver vs. sklearn ``GridSearchCV(Ridge())``, side by side.

Same 5 object-stratified folds, same 100 alphas (1e-3 .. 1e6), on
(a) 1000 features x 2592 images x 168 sites (a random projection of the pixels), and
(b) the raw pixels of 2592 images at 3 x 64 x 64 (12,288 features).
Prints both times, the ratio, and the alpha each method picked.

    python benchmarks/ridge.py [--case a|b|both]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV

from trainables.data.datasets import load_synthetic
from trainables.data.synthetic import SyntheticSpec
from trainables.fitting.ridge import object_folds, ridge_cv

ALPHAS = np.logspace(-3, 6, 100)


def run_case(name: str, x: np.ndarray, y: np.ndarray, objects: np.ndarray) -> None:
    folds = object_folds(objects, 5, seed=0)
    start = time.perf_counter()
    fast = ridge_cv(x, y, folds, ALPHAS)
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    grid = GridSearchCV(Ridge(), {"alpha": ALPHAS}, cv=folds, n_jobs=1).fit(x, y)
    t_grid = time.perf_counter() - start
    same = "same alpha" if np.isclose(fast.alpha, grid.best_params_["alpha"]) else "DIFFERENT alpha"
    print(f"({name}) {x.shape[0]} images x {x.shape[1]} features x {y.shape[1]} sites, 5 folds x {len(ALPHAS)} alphas")
    print(f"    GridSearchCV(Ridge): {t_grid:9.2f} s   alpha {grid.best_params_['alpha']:.4g}")
    print(f"    fast ridge_cv      : {t_fast:9.2f} s   alpha {fast.alpha:.4g}   ({same})")
    print(f"    speed-up           : {t_grid / t_fast:9.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=("a", "b", "both"), default="both")
    args = parser.parse_args()
    data = load_synthetic(SyntheticSpec(resolution=64, images_per_object=50))
    pixels = data.stimulus_train.reshape(len(data.stimulus_train), -1).astype(np.float64)
    y = data.spikes_train.astype(np.float64)
    if args.case in ("a", "both"):
        projection = np.random.default_rng(0).normal(size=(pixels.shape[1], 1000)) / np.sqrt(pixels.shape[1])
        run_case("a", pixels @ projection, y, data.object_train)
    if args.case in ("b", "both"):
        run_case("b", pixels, y, data.object_train)


if __name__ == "__main__":
    main()
