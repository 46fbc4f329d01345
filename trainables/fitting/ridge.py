"""Multi-output ridge regression with the regularisation chosen by cross-validation, fast.

sklearn's ``GridSearchCV(Ridge())`` refits the model for every (alpha, fold). Here
each fold is decomposed once and every alpha then costs matrix products:

- images outnumber features: thin SVD of the centred training features,
  ``X = U S V^T``, and ``W(alpha) = V diag(s / (s^2 + alpha)) U^T Y``;
- features outnumber images (raw pixels, conv layers): eigendecomposition of the
  Gram matrix ``X X^T = Q diag(lam) Q^T``, and predictions
  ``K_new Q diag(1 / (lam + alpha)) Q^T Y``.

PCA with k components fitted on the training fold is ridge restricted to the top
k singular directions of that fold, so it comes from the same decomposition.
The intercept is handled by centring on the training fold. Scores are R^2
averaged over sites, as ``Ridge.score`` (GridSearchCV's default scoring).

All arrays are torch tensors on one device (float64 on the CPU for exactness,
float32 on CUDA); numpy inputs are converted.

Many features (raw pixels at 224 px: 150,528 per image) would not fit in memory
as float64 copies per fold. There the features are never copied: one Gram matrix
of every image involved is accumulated over column chunks (float32 products of
chunks centred on the fitted images, summed in float64), and each fold's centred
kernel and cross-kernel follow from it exactly (:func:`gram_decompose`), so the
memory is the Gram matrix (n x n) plus one chunk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from trainables.core.devices import default_device

log = logging.getLogger(__name__)
DEFAULT_ALPHAS = np.logspace(-3, 6, 100)


def object_folds(objects: np.ndarray, n_splits: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds stratified by object: every object has images in every training and test fold.

    Parameters
    ----------
    objects : array of str, shape (n_images,)

    Returns
    -------
    list of (train_idx, test_idx)
    """
    # Imported here: scikit-learn takes about 2 s to import, which every process that imports the families (the
    # launcher, each Ray worker) would pay, while only a readout's fit needs it.
    from sklearn.model_selection import StratifiedKFold

    smallest = int(np.unique(objects, return_counts=True)[1].min())
    if smallest < n_splits:  # StratifiedKFold needs every object in every fold
        log.warning("an object has only %d images: using %d folds instead of %d", smallest, max(smallest, 2), n_splits)
        n_splits = max(smallest, 2)
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(objects)), objects))


def _tensor(a, device, dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).to(device=device, dtype=dtype)


@dataclass
class _Decomposition:
    """One training fold, decomposed: predictions for any alpha on ``x_new`` are ``a @ diag(f(alpha)) @ b``."""

    a: torch.Tensor  # (n_new, r)
    b: torch.Tensor  # (r, n_sites)
    spectrum: torch.Tensor  # (r,) squared singular values, descending
    y_mean: torch.Tensor  # (n_sites,)
    primal: bool  # True: a = Xn V, b = S U^T Y (filter 1/(s^2+a)); False: a = Kn Q, b = Q^T Y (filter 1/(lam+a))

    def predict(self, alpha: float | torch.Tensor, components: int | None = None) -> torch.Tensor:
        """Predictions for one alpha (scalar) or one alpha per site (tensor of shape (n_sites,))."""
        r = self.spectrum.numel() if not components else min(components, self.spectrum.numel())
        lam = self.spectrum[:r]
        alpha = torch.as_tensor(alpha, dtype=lam.dtype, device=lam.device)
        keep = lam > lam[0] * 1e-12 if lam.numel() else lam > 0  # drop numerically null directions
        if alpha.ndim == 0:
            filt = torch.where(keep, 1.0 / (lam + alpha), torch.zeros_like(lam))
            return (self.a[:, :r] * filt) @ self.b[:r] + self.y_mean
        filt = torch.where(keep[:, None], 1.0 / (lam[:, None] + alpha[None, :]), torch.zeros(1, dtype=lam.dtype,
                                                                                                device=lam.device))
        return torch.einsum("nr,rs,rs->ns", self.a[:, :r], filt, self.b[:r]) + self.y_mean


def decompose(x_train: torch.Tensor, y_train: torch.Tensor, x_new: torch.Tensor) -> _Decomposition:
    """Decompose one training fold (centred on itself) for predictions on ``x_new``.

    Shapes: x_train (n, p), y_train (n, n_sites), x_new (m, p).
    """
    x_mean, y_mean = x_train.mean(0), y_train.mean(0)
    xc, yc = x_train - x_mean, y_train - y_mean
    xn = x_new - x_mean
    n, p = xc.shape
    if n >= p:
        u, s, vt = torch.linalg.svd(xc, full_matrices=False)
        # W(alpha) = V diag(s/(s^2+alpha)) U^T Y  ->  pred = (Xn V) diag(1/(s^2+alpha)) (diag(s) U^T Y)
        return _Decomposition(xn @ vt.T, s[:, None] * (u.T @ yc), s**2, y_mean, True)
    return _dual(xc @ xc.T, xn @ xc.T, yc, y_mean)


def _dual(k_train: torch.Tensor, k_new: torch.Tensor, yc: torch.Tensor, y_mean: torch.Tensor) -> _Decomposition:
    """Dual form from the centred kernel (n, n), the centred cross-kernel (m, n) and centred responses (n, n_sites)."""
    lam, q = torch.linalg.eigh(k_train)
    lam, q = lam.flip(0).clamp_min(0), q.flip(1)
    return _Decomposition(k_new @ q, q.T @ yc, lam, y_mean, False)


def gram_matrix(blocks: list[tuple[np.ndarray, np.ndarray | None]], n_fit: int, chunk: int = 4096,
                device: torch.device | None = None) -> torch.Tensor:
    """Gram matrix of stacked rows, accumulated over column chunks: no copy of the features is ever made.

    Parameters
    ----------
    blocks : list of (array of shape (N_i, p), row indices or None)
        The rows, in order (e.g. the fitted images, then the images to predict); arrays
        are read in place (an ``np.memmap`` or the object store's shared copy will do).
    n_fit : int
        The first ``n_fit`` stacked rows are the fitted images: every chunk is centred on
        their mean first, which changes no centred kernel but keeps float32 products exact.
    chunk : int
        Feature columns per step; memory is about ``4 * chunk * rows`` bytes.

    Returns
    -------
    tensor, shape (m, m), float64 on the CPU (float32 on CUDA)
        ``X X^T`` of the stacked rows ``X`` (m = total rows), centred on the fitted rows' mean.
    """
    device = device or default_device()
    dtype = torch.float32 if device.type == "cuda" else torch.float64
    p = blocks[0][0].shape[1]
    m = sum(len(a) if rows is None else len(rows) for a, rows in blocks)
    gram = torch.zeros(m, m, dtype=dtype, device=device)
    for start in range(0, p, chunk):
        parts = [a[:, start : start + chunk] if rows is None else a[rows, start : start + chunk] for a, rows in blocks]
        x = torch.as_tensor(np.concatenate(parts).astype(np.float32, copy=False)).to(device)
        x -= x[:n_fit].mean(0)
        gram += (x @ x.T).to(dtype)
    return gram


def gram_decompose(gram: torch.Tensor, train: torch.Tensor, new: torch.Tensor, y_train: torch.Tensor) -> _Decomposition:
    """:func:`decompose` from a Gram matrix: rows ``train`` fitted (centred on themselves), rows ``new`` predicted.

    With ``G`` the Gram matrix, ``C = I - 11^T/n`` the centring on the fitted rows:
    the centred kernel is ``C G_tt C`` and the centred cross-kernel ``(G_nt - 1 1^T G_tt / n) C``.
    """
    g_tt = gram[train][:, train]
    g_nt = gram[new][:, train]
    col_mean = g_tt.mean(0)
    total = col_mean.mean()
    k_train = g_tt - col_mean[None, :] - col_mean[:, None] + total
    k_new = g_nt - g_nt.mean(1, keepdim=True) - col_mean[None, :] + total
    y_mean = y_train.mean(0)
    return _dual(k_train, k_new, y_train - y_mean, y_mean)


def r2_per_site(y: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """R^2 of each site (column), shape (n_sites,)."""
    ss_res = ((y - pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    return torch.where(ss_tot > 0, 1 - ss_res / ss_tot, torch.zeros_like(ss_tot))


@dataclass
class RidgeCVResult:
    """Cross-validation outcome.

    Attributes
    ----------
    alpha : float or array of shape (n_sites,)
        Chosen regularisation (one per site when ``per_site``).
    alphas : array, shape (n_alphas,)
    cv_scores : array, shape (n_alphas, n_sites)
        R^2 per alpha and site, averaged over folds.
    """

    alpha: float | np.ndarray
    alphas: np.ndarray
    cv_scores: np.ndarray

    @property
    def mean_scores(self) -> np.ndarray:
        """R^2 averaged over sites per alpha, shape (n_alphas,) (GridSearchCV's mean_test_score)."""
        return self.cv_scores.mean(axis=1)


def ridge_cv(x, y, folds, alphas=DEFAULT_ALPHAS, per_site: bool = False, components: int | None = None,
             device: torch.device | None = None, gram: torch.Tensor | None = None) -> RidgeCVResult:
    """Choose ridge's alpha by K-fold cross-validation, one decomposition per fold.

    Parameters
    ----------
    x : array, shape (n_images, n_features), or None with ``gram``
    y : array, shape (n_images, n_sites)
    folds : list of (train_idx, test_idx)
    alphas : array, shape (n_alphas,)
    per_site : bool
        One alpha per site instead of one for all.
    components : int, optional
        PCA components fitted on each training fold (None: no PCA).
    device : torch.device, optional
        Default: CUDA when present (float32), else CPU (float64).
    gram : tensor, shape (n_images, n_images), optional
        :func:`gram_matrix` of the images instead of ``x`` (many features).

    Returns
    -------
    RidgeCVResult
    """
    device = gram.device if gram is not None else device or default_device()
    dtype = torch.float32 if device.type == "cuda" else torch.float64
    yt = _tensor(y, device, dtype)
    xt = None if gram is not None else _tensor(x, device, dtype)
    alphas = np.asarray(alphas, dtype=float)
    scores = torch.zeros(len(alphas), yt.shape[1], dtype=dtype, device=device)
    for train_idx, test_idx in folds:
        tr, te = torch.as_tensor(train_idx, device=device), torch.as_tensor(test_idx, device=device)
        dec = gram_decompose(gram, tr, te, yt[tr]) if gram is not None else decompose(xt[tr], yt[tr], xt[te])
        for i, alpha in enumerate(alphas):
            scores[i] += r2_per_site(yt[te], dec.predict(float(alpha), components))
    scores = (scores / len(folds)).cpu().numpy()
    if per_site:
        chosen = alphas[np.argmax(scores, axis=0)]
    else:
        chosen = float(alphas[int(np.argmax(scores.mean(axis=1)))])  # first of ties, as GridSearchCV
    return RidgeCVResult(chosen, alphas, scores)


def ridge_predict(x_train, y_train, x_new, alpha, components: int | None = None,
                  device: torch.device | None = None) -> np.ndarray:
    """Fit ridge (with intercept) on ``x_train`` and predict ``x_new``.

    Parameters
    ----------
    x_train : array, shape (n, p)
    y_train : array, shape (n, n_sites)
    x_new : array, shape (m, p)
    alpha : float or array of shape (n_sites,)
        0 gives least squares (minimum-norm where p > n).
    components : int, optional
        PCA components fitted on ``x_train``.

    Returns
    -------
    array, shape (m, n_sites)
    """
    device = device or default_device()
    dtype = torch.float32 if device.type == "cuda" else torch.float64
    dec = decompose(_tensor(x_train, device, dtype), _tensor(y_train, device, dtype), _tensor(x_new, device, dtype))
    alpha = _tensor(alpha, device, dtype) if np.ndim(alpha) else float(alpha)
    return dec.predict(alpha, components).cpu().numpy()


def ridge_predict_gram(gram: torch.Tensor, n_train: int, y_train, alpha, components: int | None = None) -> np.ndarray:
    """:func:`ridge_predict` from a :func:`gram_matrix` whose first ``n_train`` rows are fitted, the rest predicted.

    Returns
    -------
    array, shape (m - n_train, n_sites)
    """
    dtype, device = gram.dtype, gram.device
    rows = torch.arange(gram.shape[0], device=device)
    dec = gram_decompose(gram, rows[:n_train], rows[n_train:], _tensor(y_train, device, dtype))
    alpha = _tensor(alpha, device, dtype) if np.ndim(alpha) else float(alpha)
    return dec.predict(alpha, components).cpu().numpy()
