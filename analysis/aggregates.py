"""rliable aggregates with reproducible, vectorised stratified-bootstrap CIs.

Glossary (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice"):
    x[r, g]  human-normalised score of run r on game g  -> score matrix (runs x games)
    mean     mean over games of the per-game mean score
    median   median over games of the per-game mean score
    iqm      interquartile mean: 25%-trimmed mean of all (run, game) scores
    og       optimality gap at gamma=1: 1 - mean(min(x, 1))
    P(X>Y)   probability of improvement: mean over games of P(x_g > y_g) (Mann-Whitney U / nm)
    profile  score distribution: fraction of runs with score > tau, for each threshold tau

Why not call rliable's bootstrap directly: rliable 1.2 (on arch) re-draws and re-evaluates in a
Python loop per replicate and per method (31 s for 4 methods x 50,000 reps here; its
probability of improvement 65 s for 3 pairs x 2,000 reps), and it draws from numpy's *global*
RNG, so its ``random_state`` argument does not make it reproducible. This module draws exactly
the same stratified resamples as rliable (same ``randint`` stream, tested equal to
``rliable.library.get_interval_estimates`` after ``np.random.seed(s)``) from a private
``RandomState(s)``, evaluates all metrics on all replicates at once in numpy, and takes the
same percentile intervals (arch's ``np.percentile`` with linear interpolation).
``backend="rliable"`` runs rliable itself instead, seeding and then restoring numpy's global
state around the call.

Unequal run counts across games (DreamerV3-2024 drops seeds without an episode in its frame
window): the matrix is NaN-padded (``scores.score_matrix``) and the bootstrap stays stratified
by game: game g with k_g runs draws k_g runs from its own k_g (with k_g == runs this is
rliable's draw). Mean and median use per-game means; the optimality gap and the profiles
average per game first, then over games (each game weighs the same, equal to rliable's pooled
value when counts are equal); the IQM trims the pooled k_1 + ... + k_G scores (each run weighs
the same: the only definition that needs no weights). rliable itself cannot take NaN-padded
matrices, so ``backend="rliable"`` refuses unequal counts.

Seeds: method m's bootstrap uses ``RandomState(method_seed(seed, m))``, so a method's CIs do
not depend on which other methods are analysed alongside it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from rliable import metrics as rlm

from analysis.scores import ATARI100K_GAMES, human_normalise, score_matrix

METRICS = ("mean", "median", "iqm", "optimality_gap")
DEFAULT_REPS = 50_000
DEFAULT_POI_REPS = 2_000
DEFAULT_PROFILE_REPS = 2_000
CI_SIZE = 0.95
_BUDGET = 8_000_000  # elements per resampled chunk (~64 MB of float64)

Matrix = np.ndarray  # (runs, games), NaN-padded at the bottom of a game's column


def method_seed(seed: int, method: str) -> int:
    """Per-method bootstrap seed derived from the user seed and the method name."""
    return zlib.crc32(f"{int(seed)}:{method}".encode()) & 0x7FFF_FFFF


def run_counts(mat: Matrix) -> np.ndarray:
    """Runs per game (k_g) of a NaN-padded (runs x games) matrix; checks the padding."""
    assert mat.ndim == 2, mat.shape
    valid = ~np.isnan(mat)
    k = valid.sum(0)  # (games,)
    if (k == 0).any():
        raise ValueError(f"games {np.flatnonzero(k == 0).tolist()} have no runs")
    if not (valid == (np.arange(mat.shape[0])[:, None] < k[None, :])).all():
        raise ValueError("NaN padding must sit below each game's runs (use score_matrix)")
    return k


# ---------------------------------------------------------------- metrics on batches
def metrics_batch(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """All four metrics for a batch of resampled matrices x (B, runs, games) -> (B, 4).

    Reorders x within each replicate (in-place partition for the IQM): pass a scratch copy.
    """
    assert x.ndim == 3, x.shape
    b, n, m = x.shape
    if (k == n).all():  # equal counts: plain (faster) reductions
        game_means = x.mean(1)  # (B, games)
        og = 1.0 - np.minimum(x, 1.0).mean((1, 2))  # (B,)
    else:
        game_means = np.nansum(x, 1) / k  # (B, games)
        og = 1.0 - (np.nansum(np.minimum(x, 1.0), 1) / k).mean(1)  # (B,)
    total = int(k.sum())
    cut = int(0.25 * total)  # scipy.stats.trim_mean(proportiontocut=0.25)
    flat = x.reshape(b, n * m)  # NaN (padding) partitions to the end
    if total > 1:  # in place (x is a scratch resample) after the per-game reductions above
        flat.partition((cut, total - cut - 1), axis=1)
    iqm = flat[:, cut: total - cut].mean(1)  # (B,)
    return np.stack([game_means.mean(1), np.median(game_means, 1), iqm, og], axis=1)


def point_estimates(mat: Matrix) -> np.ndarray:
    """[mean, median, iqm, optimality_gap] of one score matrix; rliable.metrics when equal."""
    k = run_counts(mat)
    if (k == mat.shape[0]).all():
        return np.array([rlm.aggregate_mean(mat), rlm.aggregate_median(mat),
                         rlm.aggregate_iqm(mat), rlm.aggregate_optimality_gap(mat)])
    return metrics_batch(mat[None].copy(), k)[0]


def _poi_batch(x: np.ndarray, kx: np.ndarray, y: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """P(X > Y) for batches x (B, nx, games), y (B, ny, games) -> (B,)."""
    d = x[:, :, None, :] - y[:, None, :, :]  # (B, nx, ny, games); NaN where padded
    wins = (d > 0).sum((1, 2)) + 0.5 * (d == 0).sum((1, 2))  # (B, games): Mann-Whitney U
    return (wins / (kx * ky)).mean(1)


def _profile_batch(x: np.ndarray, k: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs above each tau, averaged per game then over games: (B, taus)."""
    above = (x[..., None] > taus).sum(1)  # (B, games, taus); NaN > tau is False
    return (above / k[None, :, None]).mean(1)


# ---------------------------------------------------------------- bootstrap engine
def _resampled(mats: Sequence[Matrix], reps: int, rs: np.random.RandomState, per_rep: int):
    """Yield chunks of stratified resamples: a list (one per matrix) of (B, runs, games).

    Draws ``rs.randint(0, k_g)`` per cell, in the order rliable's StratifiedBootstrap
    (one matrix) or StratifiedIndependentBootstrap (several, interleaved per replicate) does.
    """
    ks = [run_counts(m) for m in mats]
    cols = [np.arange(m.shape[1]) for m in mats]
    pads = [np.arange(m.shape[0])[:, None] >= k[None, :] for m, k in zip(mats, ks, strict=True)]
    chunk = max(1, min(reps, _BUDGET // max(1, per_rep)))
    for start in range(0, reps, chunk):
        c = min(chunk, reps - start)
        if len(mats) == 1:  # one call draws the same stream as c consecutive calls
            idx = [rs.randint(0, ks[0], size=(c, *mats[0].shape), dtype=np.int32)]
        else:
            draws = [[rs.randint(0, k, size=m.shape, dtype=np.int32)
                      for m, k in zip(mats, ks, strict=True)] for _ in range(c)]
            idx = [np.stack([d[i] for d in draws]) for i in range(len(mats))]
        out = []
        for m, i, col, pad in zip(mats, idx, cols, pads, strict=True):
            x = m[i, col]  # (c, runs, games): run i[b, r, g] of game g
            if pad.any():
                x[:, pad] = np.nan
            out.append(x)
        yield out


def _percentile_ci(values: np.ndarray, size: float = CI_SIZE) -> np.ndarray:
    """(reps, K) bootstrap values -> (2, K) [low; high] percentile interval (arch's method)."""
    alpha = 100 * (1 - size) / 2
    return np.percentile(values, [alpha, 100 - alpha], axis=0)


def bootstrap_metrics(mat: Matrix, reps: int = DEFAULT_REPS,
                      rng: int | np.random.RandomState = 0) -> tuple[np.ndarray, np.ndarray]:
    """Point estimates (4,) and 95% CIs (2, 4) of [mean, median, iqm, og] for one matrix.

    ``rng`` an int seeds a private RandomState; results equal rliable's
    ``get_interval_estimates`` run after ``np.random.seed(rng)`` (equal run counts).
    """
    rs = rng if isinstance(rng, np.random.RandomState) else np.random.RandomState(rng)
    k = run_counts(mat)
    vals = np.concatenate([metrics_batch(x, k) for (x,) in _resampled([mat], reps, rs, mat.size)])
    return point_estimates(mat), _percentile_ci(vals)


def rliable_metrics(mat: Matrix, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Same as :func:`bootstrap_metrics` through rliable itself (slow; reference backend).

    Seeds numpy's global RNG (rliable's bootstrap draws from it) and restores it afterwards.
    """
    from rliable import library as rly  # imports arch (~3 s): only for this backend

    k = run_counts(mat)
    if not (k == mat.shape[0]).all():
        raise ValueError("rliable backend needs equal run counts per game; use backend='numpy'")

    def func(x):
        return np.array([rlm.aggregate_mean(x), rlm.aggregate_median(x),
                         rlm.aggregate_iqm(x), rlm.aggregate_optimality_gap(x)])

    state = np.random.get_state()
    try:
        np.random.seed(seed)
        pts, cis = rly.get_interval_estimates({"m": mat}, func, reps=reps)
    finally:
        np.random.set_state(state)
    return pts["m"], cis["m"]


def superhuman_games(game_means: np.ndarray) -> int:
    """Games whose mean score reaches the human score (mean HNS >= 1, up to float error).

    "At or above human", the convention of the published counts: IRIS's Pong mean is exactly
    the human 14.6 and the IRIS paper counts it among its 10 superhuman games.
    """
    return int((np.asarray(game_means) >= 1.0 - 1e-9).sum())


def aggregate(df: pd.DataFrame, methods: Sequence[str] | None = None,
              games: Sequence[str] | None = None, reps: int = DEFAULT_REPS, seed: int = 0,
              backend: str = "numpy") -> dict[str, dict]:
    """Human-normalised aggregates per method, the CLI's JSON contract.

    Args:
        df: long score table (``analysis.scores`` loaders); normalised here if needed.
        methods: methods to report (default: all, in order of appearance).
        games: games to aggregate over (default: each method's own games).
        reps: bootstrap replicates; seed: bootstrap seed (see ``method_seed``).
        backend: "numpy" (vectorised, any run counts) or "rliable" (equal counts only).

    Returns:
        {method: {"mean"|"median"|"iqm"|"optimality_gap": [point, low, high],
                  "superhuman_games": n (see ``superhuman_games``), "runs": k (max runs of a
                  game; min and max are in "runs_min"/"games" for the readable table)}}
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    if backend not in ("numpy", "rliable"):
        raise ValueError(f"backend must be 'numpy' or 'rliable', got {backend!r}")
    df = df if "hns" in df.columns else human_normalise(df)
    methods = list(dict.fromkeys(df["method"])) if methods is None else list(methods)
    out = {}
    for m in methods:
        mat = score_matrix(df, m, games)
        s = method_seed(seed, m)
        pts, cis = (bootstrap_metrics(mat, reps, s) if backend == "numpy"
                    else rliable_metrics(mat, reps, s))
        k = run_counts(mat)
        game_means = np.nanmean(mat, 0)
        res = {name: [float(pts[i]), float(cis[0, i]), float(cis[1, i])]
               for i, name in enumerate(METRICS)}
        res["superhuman_games"] = superhuman_games(game_means)
        res["runs"] = int(k.max())
        res["runs_min"] = int(k.min())
        res["games"] = int(mat.shape[1])
        out[m] = res
    return out


def probability_of_improvement(x: Matrix, y: Matrix, reps: int = DEFAULT_POI_REPS,
                               rng: int | np.random.RandomState = 0) -> np.ndarray:
    """[point, low, high] of P(X > Y) on the same games (columns), stratified bootstrap.

    Resamples X and Y independently per replicate (rliable's StratifiedIndependentBootstrap,
    same draws); tested equal to ``rliable`` after ``np.random.seed``.
    """
    assert x.ndim == 2 and y.ndim == 2 and x.shape[1] == y.shape[1], (x.shape, y.shape)
    rs = rng if isinstance(rng, np.random.RandomState) else np.random.RandomState(rng)
    kx, ky = run_counts(x), run_counts(y)
    point = _poi_batch(x[None], kx, y[None], ky)[0]
    per_rep = x.shape[0] * y.shape[0] * x.shape[1]
    vals = np.concatenate([_poi_batch(bx, kx, by, ky)
                           for bx, by in _resampled([x, y], reps, rs, per_rep)])
    lo, hi = _percentile_ci(vals[:, None])[:, 0]
    return np.array([point, lo, hi])


def performance_profile(mat: Matrix, taus: np.ndarray, reps: int = DEFAULT_PROFILE_REPS,
                        rng: int | np.random.RandomState = 0) -> tuple[np.ndarray, np.ndarray]:
    """Score-distribution profile (taus,) and its 95% CI band (2, taus) for one method."""
    taus = np.asarray(taus, float)
    assert taus.ndim == 1, taus.shape
    rs = rng if isinstance(rng, np.random.RandomState) else np.random.RandomState(rng)
    k = run_counts(mat)
    point = _profile_batch(mat[None], k, taus)[0]
    vals = np.concatenate([_profile_batch(x, k, taus)
                           for (x,) in _resampled([mat], reps, rs, mat.size * len(taus))])
    return point, _percentile_ci(vals)


def bootstrap_statistic(mat: Matrix, stat: Callable[[np.ndarray, np.ndarray], np.ndarray],
                        reps: int, rng: int | np.random.RandomState = 0) -> np.ndarray:
    """Bootstrap values (reps, K) of a batched statistic stat(x (B, runs, games), k) -> (B, K)."""
    rs = rng if isinstance(rng, np.random.RandomState) else np.random.RandomState(rng)
    k = run_counts(mat)
    return np.concatenate([stat(x, k) for (x,) in _resampled([mat], reps, rs, mat.size)])


def metric_difference(x: Matrix, y: Matrix, reps: int = DEFAULT_REPS, seed: int = 0,
                      ) -> dict[str, list[float]]:
    """[point, low, high] of metric(X) - metric(Y) for the four metrics, X and Y resampled
    independently (two seeds derived from ``seed``)."""
    vx = bootstrap_statistic(x, metrics_batch, reps, method_seed(seed, "x"))
    vy = bootstrap_statistic(y, metrics_batch, reps, method_seed(seed, "y"))
    pts = point_estimates(x) - point_estimates(y)
    cis = _percentile_ci(vx - vy)
    return {name: [float(pts[i]), float(cis[0, i]), float(cis[1, i])]
            for i, name in enumerate(METRICS)}


def matrices(df: pd.DataFrame, methods: Sequence[str], games: Sequence[str] | None = None,
             ) -> Mapping[str, Matrix]:
    """{method: NaN-padded HNS matrix} on a common game list (default: games all share)."""
    df = df if "hns" in df.columns else human_normalise(df)
    if games is None:
        sets = [set(df[df["method"] == m]["game"]) for m in methods]
        common = set.intersection(*sets) if sets else set()
        if not common:
            raise ValueError(f"methods {list(methods)} share no game")
        games = sorted(common, key=ATARI100K_GAMES.index)
    return {m: score_matrix(df, m, games) for m in methods}

