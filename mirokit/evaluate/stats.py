"""Statistics for evaluations: means with 95% confidence intervals, the best-of-N estimator, Spearman.

Confidence intervals are Student-t intervals. Images of one prompt are not independent samples (a hard
prompt lowers all of its images), so with several images per prompt the standard error is the
cluster-robust one with the prompt as cluster (CR1 sandwich; with equal images per prompt it equals the
standard error of the per-prompt means) and G - 1 degrees of freedom for G prompts. A metric that is a
mean of per-category means (GenEval's overall) gets a stratified interval: the variance is the sum of
the categories' (cluster-robust) variances over T^2, normal quantile.

The best-of-N curve is computed without resampling: for a pool of M scores of one prompt, the expected
maximum of N scores drawn without replacement is sum_i w_i x_(i) over the ascending order statistics,
w_i = C(i-1, N-1) / C(M, N) (the i-th smallest is the maximum of the draw when it is drawn together with
N-1 of the i-1 smaller ones). It is exact (the average over all C(M, N) subsets), not an estimate of it.
"""

from __future__ import annotations

import math

import numpy as np


def _t_quantile(confidence: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, dof))


def _clean(values, groups) -> tuple[np.ndarray, np.ndarray | None, int]:
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    g = None if groups is None else np.asarray(groups).reshape(-1)
    if g is not None and len(g) != len(x):
        raise ValueError(f"{len(x)} values but {len(g)} group labels")
    keep = np.isfinite(x)
    return x[keep], (None if g is None else g[keep]), int((~keep).sum())


def _mean_and_var(x: np.ndarray, g: np.ndarray | None) -> tuple[float, float, int]:
    """(mean, variance of the mean, degrees of freedom); variance NaN when it cannot be estimated."""
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    if g is None:
        if n < 2:
            return mean, float("nan"), 0
        return mean, float(x.var(ddof=1) / n), n - 1
    labels, inverse = np.unique(g, return_inverse=True)
    clusters = len(labels)
    if clusters < 2:
        return mean, float("nan"), 0
    sums = np.bincount(inverse, weights=x - mean, minlength=clusters)
    var = clusters / (clusters - 1) * float((sums ** 2).sum()) / n ** 2
    return mean, var, clusters - 1


def mean_ci(values, groups=None, *, confidence: float = 0.95) -> dict:
    """Mean and t-interval of `values` (N,), clustered by `groups` (N,) labels (e.g. prompt index) if given.

    NaN values are left out and counted. Returns {"mean", "low", "high", "half_width", "n", "n_groups",
    "missing", "method"}; the interval is NaN when it cannot be estimated (fewer than 2 values or clusters).
    """
    x, g, missing = _clean(values, groups)
    mean, var, dof = _mean_and_var(x, g)
    half = _t_quantile(confidence, dof) * math.sqrt(var) if dof > 0 else float("nan")
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half, "n": int(len(x)),
            "n_groups": int(len(np.unique(g))) if g is not None else int(len(x)), "missing": missing,
            "method": f"t-interval{' clustered by prompt' if g is not None else ''}, {confidence:.0%}"}


def stratified_mean_ci(values, strata, groups=None, *, confidence: float = 0.95) -> dict:
    """Mean of per-stratum means (e.g. GenEval's mean over tags) with a normal interval; see mean_ci.

    values, strata, groups: (N,). Variance = sum over strata of each stratum mean's (clustered) variance / T^2.
    """
    x_all = np.asarray(values, dtype=np.float64).reshape(-1)
    s_all = np.asarray(strata).reshape(-1)
    g_all = None if groups is None else np.asarray(groups).reshape(-1)
    if len(s_all) != len(x_all):
        raise ValueError(f"{len(x_all)} values but {len(s_all)} strata labels")
    means, variances, missing, n = [], [], 0, 0
    for label in sorted(set(s_all.tolist())):
        pick = s_all == label
        x, g, miss = _clean(x_all[pick], None if g_all is None else g_all[pick])
        missing += miss
        n += len(x)
        if len(x):
            mean, var, _ = _mean_and_var(x, g)
            means.append(mean)
            variances.append(var)
    mean = float(np.mean(means)) if means else float("nan")
    from scipy.stats import norm

    half = float(norm.ppf(0.5 + confidence / 2)) * math.sqrt(sum(variances)) / len(means) if means else float("nan")
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half, "n": n,
            "n_groups": int(len(np.unique(g_all))) if g_all is not None else n, "strata": len(means),
            "missing": missing, "method": f"stratified normal interval (mean of {len(means)} strata), {confidence:.0%}"}


def paired_mean_ci(a, b, groups, strata=None, *, confidence: float = 0.95) -> dict:
    """Interval of the mean of a - b over paired values (N,) of the same images: pairs with a NaN side are left
    out, the differences are averaged per group (prompt), then a t-interval over groups, or with `strata` (N,
    labels, constant within a group) the stratified interval (for a mean of per-tag means such as GenEval's)."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    groups = list(groups)
    if not len(a) == len(b) == len(groups) or (strata is not None and len(strata) != len(a)):
        raise ValueError(f"paired values need equal lengths, got {len(a)}, {len(b)}, {len(groups)} groups")
    by_group: dict = {}
    stratum: dict = {}
    for k, g in enumerate(groups):
        if np.isfinite(a[k]) and np.isfinite(b[k]):
            by_group.setdefault(g, []).append(a[k] - b[k])
            stratum[g] = strata[k] if strata is not None else None
    keys = list(by_group)
    diffs = [float(np.mean(by_group[g])) for g in keys]
    if strata is not None:
        return stratified_mean_ci(diffs, [stratum[g] for g in keys], confidence=confidence)
    return mean_ci(diffs, confidence=confidence)


def best_of_n_weights(m: int, n: int) -> np.ndarray:
    """(M,) weights w_i = C(i-1, N-1) / C(M, N) of the ascending order statistics (i = 1..M); they sum to 1."""
    if not 1 <= n <= m:
        raise ValueError(f"best-of-N needs 1 <= N <= pool size M, got N={n}, M={m}")
    from scipy.special import gammaln

    i = np.arange(1, m + 1)
    w = np.zeros(m)
    ok = i >= n
    k = i[ok]
    log_w = (gammaln(k) - gammaln(n) - gammaln(k - n + 1)) - (gammaln(m + 1) - gammaln(n + 1) - gammaln(m - n + 1))
    w[ok] = np.exp(log_w)
    return w / w.sum()  # exact up to rounding; renormalise so the rounding cannot bias the mean


def expected_best_of_n(select, n: int, report=None) -> float:
    """Expected score of the best of N samples drawn without replacement from one pool (exact, no resampling).

    select: (M,) selection scores of the pool (the sample with the highest is kept);
    report: (M,) scores reported for the kept sample (default: `select` itself).
    Ties in `select` are broken by position (a stable sort), as an argmax over the drawn samples would.
    """
    s = np.asarray(select, dtype=np.float64).reshape(-1)
    r = s if report is None else np.asarray(report, dtype=np.float64).reshape(-1)
    if len(r) != len(s):
        raise ValueError(f"{len(s)} selection scores but {len(r)} reported scores")
    if not np.isfinite(s).all() or not np.isfinite(r).all():
        raise ValueError("best-of-N needs finite scores (drop unscored samples first)")
    order = np.argsort(s, kind="stable")
    return float(best_of_n_weights(len(s), n) @ r[order])


def best_of_n_curve(pools: list, ns: list[int], *, confidence: float = 0.95, report: list | None = None) -> dict:
    """Best-of-N over prompts: pools[p] = (M_p,) scores of prompt p -> {N: mean_ci over prompts of the
    per-prompt expected best-of-N}. NaN scores are dropped from each pool; a prompt whose pool is smaller
    than N is left out of that N (counted in "missing")."""
    out = {}
    for n in ns:
        values = []
        for p, pool in enumerate(pools):
            s = np.asarray(pool, dtype=np.float64)
            r = s if report is None else np.asarray(report[p], dtype=np.float64)
            keep = np.isfinite(s) & np.isfinite(r)
            values.append(expected_best_of_n(s[keep], n, r[keep]) if keep.sum() >= n else float("nan"))
        out[n] = mean_ci(values, confidence=confidence)
    return out


def first_n_reaching(curve: dict[int, float], target: float) -> int | None:
    """The smallest N of `curve` {N: value} whose value is >= target, or None if none is."""
    for n in sorted(curve):
        if curve[n] >= target:
            return n
    return None


def spearman(a, b) -> float:
    """Spearman rank correlation of (N,) a and b (average ranks for ties; NaN pairs dropped)."""
    from scipy.stats import rankdata

    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"spearman needs equal lengths, got {len(x)} and {len(y)}")
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2:
        return float("nan")
    rx, ry = rankdata(x[keep]), rankdata(y[keep])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx ** 2).sum() * (ry ** 2).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")
