import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from trainables.fitting.ridge import gram_matrix, object_folds, ridge_cv, ridge_predict, ridge_predict_gram


def problem(n, p, sites=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)) * rng.uniform(0.1, 3, p)
    y = x[:, :4] @ rng.normal(size=(4, sites)) + 2 * rng.normal(size=(n, sites)) + 5
    objects = np.repeat([f"o{i}" for i in range(10)], n // 10)
    return x, y, objects


@pytest.mark.parametrize("n, p", [(150, 20), (80, 300)], ids=["svd", "gram"])
def test_same_alpha_and_predictions_as_sklearn(n, p):
    x, y, objects = problem(n, p)
    folds = object_folds(objects, 5, seed=0)
    alphas = np.logspace(-3, 5, 40)
    ours = ridge_cv(x, y, folds, alphas)
    grid = GridSearchCV(Ridge(), {"alpha": alphas}, cv=folds).fit(x, y)
    assert ours.alpha == grid.best_params_["alpha"]
    np.testing.assert_allclose(ours.mean_scores, grid.cv_results_["mean_test_score"], atol=1e-9)
    x_new = np.random.default_rng(1).normal(size=(7, p))
    expected = Ridge(alpha=ours.alpha).fit(x, y).predict(x_new)
    got = ridge_predict(x, y, x_new, ours.alpha)
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


def test_per_site_alpha_matches_sitewise_search():
    x, y, objects = problem(120, 30, sites=4)
    folds = object_folds(objects, 5, seed=0)
    alphas = np.logspace(-2, 4, 25)
    ours = ridge_cv(x, y, folds, alphas, per_site=True)
    for site in range(4):
        grid = GridSearchCV(Ridge(), {"alpha": alphas}, cv=folds).fit(x, y[:, site])
        assert ours.alpha[site] == grid.best_params_["alpha"]
    pred = ridge_predict(x, y, x[:5], ours.alpha)
    for site in range(4):
        expected = Ridge(alpha=ours.alpha[site]).fit(x, y[:, site]).predict(x[:5])
        np.testing.assert_allclose(pred[:, site], expected, rtol=1e-6)


def test_pca_is_fitted_on_the_training_images_only():
    x, y, _ = problem(100, 40)
    x_new = np.random.default_rng(3).normal(size=(9, 40)) * 5
    expected = make_pipeline(PCA(10), Ridge(alpha=3.0)).fit(x, y).predict(x_new)
    np.testing.assert_allclose(ridge_predict(x, y, x_new, 3.0, components=10), expected, rtol=1e-6, atol=1e-8)


def test_alpha_zero_is_least_squares():
    x, y, _ = problem(100, 10)
    np.testing.assert_allclose(ridge_predict(x, y, x[:5], 0.0), LinearRegression().fit(x, y).predict(x[:5]),
                               rtol=1e-6)


def test_object_folds_keep_every_object_on_both_sides():
    objects = np.repeat([f"o{i}" for i in range(8)], 10)
    for train, test in object_folds(objects, 5, seed=0):
        assert set(objects[train]) == set(objects[test]) == set(objects)


@pytest.mark.parametrize("components", [None, 15])
def test_gram_path_reads_features_in_chunks_and_agrees_with_sklearn(components):
    """Many features: one Gram matrix accumulated over column chunks (float32 products), features never copied,
    gives sklearn's choice of alpha and its predictions, with or without PCA, despite a large common offset."""
    x, y, objects = problem(80, 700)
    x = (x + 40.0).astype(np.float32)  # an offset the centring must remove before float32 products
    x_new = (np.random.default_rng(1).normal(size=(7, 700)) + 40.0).astype(np.float32)
    folds = object_folds(objects, 5, seed=0)
    alphas = np.logspace(-3, 5, 40)
    gram = gram_matrix([(x, None)], n_fit=len(x), chunk=64)
    ours = ridge_cv(None, y, folds, alphas, components=components, gram=gram)
    direct = ridge_cv(x.astype(np.float64), y, folds, alphas, components=components)
    assert ours.alpha == direct.alpha
    np.testing.assert_allclose(ours.cv_scores, direct.cv_scores, atol=1e-6)
    model = Ridge(alpha=ours.alpha) if components is None else make_pipeline(PCA(components, svd_solver="full"), Ridge(alpha=ours.alpha))
    expected = model.fit(x.astype(np.float64), y).predict(x_new.astype(np.float64))
    both = gram_matrix([(x, None), (x_new, None)], n_fit=len(x), chunk=64)
    got = ridge_predict_gram(both, len(x), y, ours.alpha, components)
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    # Rows picked by index from a larger array give the same matrix as the array of those rows.
    rows = np.arange(0, 80, 3)
    np.testing.assert_allclose(gram_matrix([(x, rows)], n_fit=len(rows), chunk=50),
                               gram_matrix([(x[rows], None)], n_fit=len(rows), chunk=700), rtol=1e-5, atol=1e-2)
