import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import explained_variance_score, r2_score

from trainables.core import metrics


@pytest.fixture
def pair():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(200, 12)) * rng.uniform(0.5, 3, 12) + rng.normal(size=12)
    pred = 0.6 * y + rng.normal(size=y.shape) + 0.3
    return y, pred


def test_explained_variance_matches_sklearn(pair):
    y, pred = pair
    assert metrics.explained_variance(y, pred) == pytest.approx(explained_variance_score(y, pred), rel=1e-12)
    np.testing.assert_allclose(
        metrics.explained_variance_per_site(y, pred), explained_variance_score(y, pred, multioutput="raw_values")
    )


def test_constant_site_follows_sklearn():
    y = np.c_[np.ones(10), np.arange(10.0)]
    pred = np.c_[np.arange(10.0), np.arange(10.0)]
    np.testing.assert_allclose(
        metrics.explained_variance_per_site(y, pred), explained_variance_score(y, pred, multioutput="raw_values")
    )


def test_pearson_and_r2_match_scipy_sklearn(pair):
    y, pred = pair
    expected = [pearsonr(y[:, i], pred[:, i])[0] for i in range(y.shape[1])]
    np.testing.assert_allclose(metrics.pearson_per_site(y, pred), expected, rtol=1e-10)
    np.testing.assert_allclose(metrics.r2_per_site(y, pred), r2_score(y, pred, multioutput="raw_values"))


def test_ordering_r2_ev_r_squared(pair):
    y, pred = pair
    r2, ev, r = metrics.r2_per_site(y, pred), metrics.explained_variance_per_site(y, pred), metrics.pearson_per_site(y, pred)
    assert np.all(r2 <= ev + 1e-12) and np.all(ev <= r**2 + 1e-12)


def test_split_half_reliability_recovers_known_ceiling():
    rng = np.random.default_rng(0)
    n_rep, n_img, n_site = 8, 400, 30
    signal = rng.normal(size=(n_img, n_site))
    true_rel = rng.uniform(0.3, 0.9, n_site)
    sigma = np.sqrt(n_rep * (1 - true_rel) / true_rel)  # signal variance 1
    reps = signal[None] + rng.normal(size=(n_rep, n_img, n_site)) * sigma
    est = metrics.split_half_reliability(reps)
    assert np.abs(est - true_rel).mean() < 0.03
    # The EV of the true signal against the trial mean is the same quantity.
    ev_truth = metrics.explained_variance_per_site(reps.mean(0), signal)
    assert np.abs(est - ev_truth).mean() < 0.04


def test_summarize_and_errors(pair):
    y, pred = pair
    s = metrics.summarize(y, pred)
    assert set(s) >= {"ev", "r_mean", "r_median", "r2", "ev_per_site", "r_per_site"}
    assert len(s["ev_per_site"]) == y.shape[1]
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.explained_variance(y, pred[:, :3])
    with pytest.raises(ValueError, match="repetitions"):
        metrics.split_half_reliability(y)
