"""Pure layer scores on pooled hidden states ``X`` (N, H) and labels ``y`` (N,): numpy and scikit-learn only.

* :func:`ilm_score` is the PIFI-ILM fork's score exactly (NAMUORI00/PIFI-ILM ``selection/ilm_direct.py`` at
  commit 555ad63, ``_ilm_effect_for_layer``): PCA(16) of X, the 5 components with the largest |Pearson
  correlation| with the label (one-vs-rest max for multi-class), for each λ in (0.5, 1.0) the counterfactual
  ``X - λ·S_sel U_sel``, and the drop of a logistic probe's accuracy, fitted and scored on the same samples,
  clipped at 0; the score is the largest drop. A wide probe fits a few hundred points perfectly, so many
  layers tie; ``--score ilm`` ranks as the fork picks (its argmax: the earlier layer wins a tie), and
  ``--score both`` ranks by the probe, ties by ILM, then by the earlier layer.
* :func:`probe_score` is a held-out score that does not reward overfitting: the mean accuracy of a logistic
  probe over stratified k folds (standardised features).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pifi_extract.errors import ConfigError, PifiError

ILM_PCS = 16
ILM_TOP_PC = 5
ILM_LAMBDAS = (0.5, 1.0)


class MissingExtraError(PifiError, ImportError):
    """An optional dependency is not installed."""


def sklearn() -> Any:
    """The scikit-learn package, or a one-line error naming the extra that installs it."""
    try:
        import sklearn as module
        import sklearn.decomposition  # noqa: F401
        import sklearn.linear_model  # noqa: F401
        import sklearn.model_selection  # noqa: F401
        import sklearn.preprocessing  # noqa: F401
    except ImportError:
        raise MissingExtraError("layer scores need scikit-learn", "pip install 'pifi[select]'") from None
    return module


def pca_scores(X: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA scores (N, k) and components (k, H), as the fork computes them (random_state 0)."""
    pca = sklearn().decomposition.PCA(n_components=n_components, svd_solver="auto", random_state=0)
    return pca.fit_transform(X), pca.components_


def label_correlation(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|Pearson r| of each score column with the label; multi-class: the max over one-vs-rest indicators."""
    y = np.asarray(y)
    targets = [y.astype(float)] if len(np.unique(y)) <= 2 else [(y == k).astype(float) for k in range(int(y.max()) + 1)]
    out = []
    for j in range(scores.shape[1]):
        s = scores[:, j]
        vals = [0.0 if s.std() < 1e-8 or t.std() < 1e-8 else abs(np.corrcoef(s, t)[0, 1]) for t in targets]
        out.append(max(vals))
    return np.array(out)


def _probe_effect(original: np.ndarray, patched: np.ndarray, y: np.ndarray) -> float:
    """Accuracy drop of a probe fitted on ``original`` when it reads ``patched`` (same samples), >= 0."""
    clf = sklearn().linear_model.LogisticRegression(max_iter=1000)
    clf.fit(original, y)
    acc0 = float(np.mean(clf.predict(original) == y))
    acc1 = float(np.mean(clf.predict(patched) == y))
    return max(0.0, acc0 - acc1)


def ilm_score(
    X: np.ndarray,  # (N, H)
    y: np.ndarray,  # (N,)
    *,
    n_pcs: int = ILM_PCS,
    top_pc: int = ILM_TOP_PC,
    lambdas: Sequence[float] = ILM_LAMBDAS,
) -> float:
    """The fork's ILM effect of one layer (see the module docstring); PCA size capped at min(N, H)."""
    X = np.asarray(X)  # float32 as the fork's pooled states
    n_pcs = min(n_pcs, *X.shape)
    scores, comps = pca_scores(X, n_pcs)
    corrs = label_correlation(scores, y)
    idx = np.argsort(-corrs)[: max(1, min(top_pc, n_pcs))]
    recon = scores[:, idx] @ comps[idx]  # (N, H)
    return max([0.0] + [_probe_effect(X, X - lam * recon, np.asarray(y)) for lam in lambdas])


def check_folds(y: np.ndarray, folds: int) -> None:
    """Refuse labels with fewer samples in a class than folds (a one-line error)."""
    values, counts = np.unique(np.asarray(y), return_counts=True)
    if len(values) < 2:
        raise ConfigError("the samples have a single label", "use more samples (--samples) or another split")
    if counts.min() < folds:
        raise ConfigError(
            f"label {values[counts.argmin()]!r} has {counts.min()} samples, fewer than the {folds} probe folds",
            "raise --samples or lower --folds",
        )


def probe_score(X: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 2023, max_iter: int = 1000) -> float:
    """Held-out accuracy of a logistic probe on standardised ``X`` (N, H): mean over stratified k folds."""
    sk = sklearn()
    y = np.asarray(y)
    check_folds(y, folds)
    X = np.asarray(X, dtype=np.float64)
    splitter = sk.model_selection.StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    accs = []
    for train, test in splitter.split(X, y):
        scaler = sk.preprocessing.StandardScaler().fit(X[train])
        clf = sk.linear_model.LogisticRegression(max_iter=max_iter)
        clf.fit(scaler.transform(X[train]), y[train])
        accs.append(float(np.mean(clf.predict(scaler.transform(X[test])) == y[test])))
    return float(np.mean(accs))


def rank(scores: Sequence[float | None], tiebreak: Sequence[float | None] | None = None) -> list[int]:
    """1-based ranks, best first (higher score; ties broken by ``tiebreak`` (higher first), then by the earlier
    position, as the fork's argmax); a None or NaN score ranks last."""
    def key(v: float | None) -> float:
        return -np.inf if v is None or v != v else float(v)  # None or NaN: last

    keys = [(key(s), key(tiebreak[i]) if tiebreak is not None else 0.0, -i) for i, s in enumerate(scores)]
    order = sorted(range(len(keys)), key=lambda i: keys[i], reverse=True)
    ranks = [0] * len(keys)
    for r, i in enumerate(order, 1):
        ranks[i] = r
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); nan when either side is constant."""
    def ranks(v: Sequence[float]) -> np.ndarray:
        v = np.asarray(v, dtype=float)
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        for value in np.unique(v):
            same = v == value
            r[same] = r[same].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])
