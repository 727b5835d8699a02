"""Paper figures through rliable.plot_utils: aggregate intervals, ablations, performance
profiles, probability of improvement, sample-efficiency curves.

Every ``plot_*`` function takes a long score table (``analysis.scores``) or an
``aggregates.aggregate`` result, writes ``out_png`` and the same path with ``.pdf``, and
returns the matplotlib Figure. Colours: Okabe-Ito, then Paul Tol's "muted" set (both
colour-blind safe), assigned to methods in the order given. A figure whose input lacks a
needed method (e.g. the DFS ablation without variant ``uniform``) raises ValueError naming
what is missing and what is there; the workflow only requests figures its grid can feed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from rliable import plot_utils  # noqa: E402

from analysis.aggregates import (  # noqa: E402
    DEFAULT_POI_REPS,
    DEFAULT_PROFILE_REPS,
    METRICS,
    _metrics_batch,
    bootstrap_statistic,
    matrices,
    method_seed,
    metric_difference,
    performance_profile,
    point_estimates,
    probability_of_improvement,
)
from analysis.scores import ATARI100K_GAMES, human_normalise, score_matrix  # noqa: E402

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000",
             "#F0E442"]
TOL_MUTED = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677",
             "#882255", "#AA4499", "#DDDDDD"]
PALETTE = OKABE_ITO + TOL_MUTED
METRIC_LABELS = {"median": "Median", "iqm": "IQM", "mean": "Mean",
                 "optimality_gap": "Optimality Gap"}
ABLATIONS = {  # name: (variant, reference, title)
    "dfs": ("drama", "uniform", "DFS vs uniform replay sampling"),
    "mamba": ("drama", "mamba1", "Mamba-2 vs Mamba-1 world model"),
}


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """Colour-blind-safe colour per method (cycles after 18 methods)."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}


def save_figure(fig: plt.Figure, out_png: str | Path) -> Path:
    """Write ``out_png`` (150 dpi) and its ``.pdf`` sibling; close the figure."""
    out_png = Path(out_png)
    if out_png.suffix != ".png":
        raise ValueError(f"figure path must end in .png (a .pdf is written next to it): {out_png}")
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=150, bbox_inches="tight")
    fig.savefig(out_png.with_suffix(".pdf"), bbox_inches="tight")
    plt.close(fig)
    return out_png


def _require(df: pd.DataFrame, methods: Sequence[str], what: str) -> None:
    have = sorted(df["method"].unique())
    missing = [m for m in methods if m not in have]
    if missing:
        raise ValueError(f"{what} needs methods {list(methods)}; missing {missing}; "
                         f"the scores hold {have}")


def plot_aggregate_intervals(agg: Mapping[str, Mapping], out_png: str | Path,
                             methods: Sequence[str] | None = None) -> plt.Figure:
    """Median / IQM / mean / optimality gap with 95% CIs per method (rliable's figure).

    ``agg``: ``aggregates.aggregate`` output (its CIs); ``methods`` sets order (top = last).
    """
    methods = list(agg) if methods is None else list(methods)
    missing = [m for m in methods if m not in agg]
    if missing or not methods:
        raise ValueError(f"aggregate plot: no aggregates for {missing or 'any method'}")
    order = ["median", "iqm", "mean", "optimality_gap"]
    pts = {m: np.array([agg[m][k][0] for k in order]) for m in methods}
    cis = {m: np.array([[agg[m][k][1] for k in order], [agg[m][k][2] for k in order]])
           for m in methods}  # (2, metrics)
    row_height = max(0.45, 2.4 / len(methods))  # short figures: keep room for the labels
    height = row_height * len(methods)  # inches (rliable's figsize rule)
    fig, _ = plot_utils.plot_interval_estimates(
        pts, cis, metric_names=[METRIC_LABELS[k] for k in order], algorithms=methods,
        colors=method_colors(methods), xlabel="Human-normalised score", subfigure_width=3.4,
        row_height=row_height, xlabel_y_coordinate=-0.55 / height)
    n_games = {agg[m].get("games") for m in methods}
    fig.suptitle(f"Atari100k aggregates, 95% stratified-bootstrap CIs "
                 f"({'/'.join(str(g) for g in n_games)} games)", y=1 + 0.5 / height)
    save_figure(fig, out_png)
    return fig


def plot_ablation(df: pd.DataFrame, variant: str, reference: str, out_png: str | Path,
                  title: str | None = None, reps: int = 10_000, seed: int = 0) -> plt.Figure:
    """Per-game difference in mean HNS (variant - reference) plus aggregate differences
    (95% CIs, the two resampled independently) and P(variant > reference).

    Uses the games both variants have. Raises ValueError if either variant is absent.
    ``ABLATIONS`` names the paper's two: ("drama", "uniform") and ("drama", "mamba1").
    """
    what = f"ablation plot {variant!r} vs {reference!r}"
    _require(df, [variant, reference], what)
    df = df if "hns" in df.columns else human_normalise(df)
    mats = matrices(df, [variant, reference])
    games = [g for g in ATARI100K_GAMES if g in set(df[df["method"] == variant]["game"])
             and g in set(df[df["method"] == reference]["game"])]
    x, y = mats[variant], mats[reference]  # (runs, games) each
    diff = np.nanmean(x, 0) - np.nanmean(y, 0)  # (games,)
    order = np.argsort(diff)
    dif = metric_difference(x, y, reps=reps, seed=seed)
    poi = probability_of_improvement(x, y, reps=min(reps, DEFAULT_POI_REPS),
                                     rng=method_seed(seed, f"{variant}>{reference}"))

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, max(3.0, 0.28 * len(games) + 1.5)),
                                   gridspec_kw={"width_ratios": [1.4, 1]})
    cols = np.where(diff[order] >= 0, OKABE_ITO[0], OKABE_ITO[5])
    ax0.barh(np.arange(len(games)), diff[order], color=cols)
    ax0.set_yticks(np.arange(len(games)), [games[i] for i in order])
    ax0.axvline(0, color="k", lw=0.8)
    ax0.set_xlabel(f"Mean HNS: {variant} − {reference}")
    ax0.set_title("Per game (blue: variant better)")
    names = ["iqm", "mean", "median", "optimality_gap"]
    for i, k in enumerate(names):
        p, lo, hi = dif[k]
        ax1.errorbar(p, i, xerr=[[p - lo], [hi - p]], fmt="o", color=OKABE_ITO[2], capsize=4)
    ax1.set_yticks(range(len(names)), [f"Δ {METRIC_LABELS[k]}" for k in names[:3]]
                   + ["Δ Optimality Gap\n(lower is better)"])
    ax1.axvline(0, color="k", lw=0.8)
    ax1.set_xlabel("Difference in human-normalised score (95% CI)")
    ax1.set_title(f"Aggregate; P({variant} > {reference}) = {poi[0]:.2f} "
                  f"[{poi[1]:.2f}, {poi[2]:.2f}]", fontsize=9)
    ax1.invert_yaxis()
    fig.suptitle(f"{title or what} ({len(games)} games, runs: {x.shape[0]} vs {y.shape[0]})")
    fig.tight_layout()
    save_figure(fig, out_png)
    return fig


def plot_performance_profiles(df: pd.DataFrame, methods: Sequence[str], out_png: str | Path,
                              taus: np.ndarray | None = None, reps: int = DEFAULT_PROFILE_REPS,
                              seed: int = 0) -> plt.Figure:
    """Score distributions (fraction of runs with HNS > tau) with 95% CI bands, on the games
    all ``methods`` share."""
    _require(df, methods, "performance profiles")
    taus = np.linspace(0.0, 8.0, 81) if taus is None else np.asarray(taus, float)
    mats = matrices(df, methods)
    prof, band = {}, {}
    for m in methods:
        prof[m], band[m] = performance_profile(mats[m], taus, reps, method_seed(seed, m))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_utils.plot_performance_profiles(
        prof, taus, performance_profile_cis=band, colors=method_colors(methods), ax=ax,
        xlabel=r"Human-normalised score ($\tau$)", ylabel=r"Fraction of runs with score $> \tau$",
        labelsize="large", ticklabelsize="medium")
    ax.legend([plt.Line2D([], [], color=c, lw=2) for c in method_colors(methods).values()],
              methods, loc="upper right", fontsize="small")
    n = next(iter(mats.values())).shape[1]
    ax.set_title(f"Performance profiles ({n} games, 95% CIs)")
    save_figure(fig, out_png)
    return fig


def plot_probability_of_improvement(df: pd.DataFrame, pairs: Sequence[tuple[str, str]],
                                    out_png: str | Path, reps: int = DEFAULT_POI_REPS,
                                    seed: int = 0) -> plt.Figure:
    """P(X > Y) with 95% CIs for each (X, Y) pair, each on the games X and Y share."""
    if not pairs:
        raise ValueError("probability of improvement: no (X, Y) pairs given")
    _require(df, sorted({m for p in pairs for m in p}), "probability of improvement")
    if any("|" in m for p in pairs for m in p):
        raise ValueError(f"method names may not contain '|': {pairs}")
    est, ci = {}, {}
    for x, y in pairs:
        mats = matrices(df, [x, y])
        r = probability_of_improvement(mats[x], mats[y], reps, method_seed(seed, f"{x}>{y}"))
        est[f"{x}|{y}"], ci[f"{x}|{y}"] = r[0], r[1:]  # ci: [low, high]
    keys = list(est)
    fig, ax = plt.subplots(figsize=(5, 0.6 * len(keys) + 1.2))
    plot_utils.plot_probability_of_improvement(
        est, ci, pair_separator="|", ax=ax, colors=PALETTE[: len(keys)], xlabel="P(X > Y)",
        labelsize="large", ticklabelsize="medium")
    ax.set_xlim(-0.05, 1.05)
    for i, k in enumerate(keys):  # the value too: a zero-width CI draws no bar
        ax.text(0.5, i + 0.33, f"{est[k]:.2f} [{ci[k][0]:.2f}, {ci[k][1]:.2f}]", ha="center",
                va="bottom", fontsize="small")
    ax.set_title("Probability of improvement (95% CIs)")
    save_figure(fig, out_png)
    return fig


def sample_efficiency(curves: pd.DataFrame, methods: Sequence[str] | None = None,
                      reps: int = DEFAULT_PROFILE_REPS, seed: int = 0
                      ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """IQM HNS with 95% CIs at each evaluation step.

    ``curves``: ``scores.load_curves`` output. Uses the steps at which every method has at
    least one run on every game of that method. Returns (steps, {m: iqm (steps,)},
    {m: ci (2, steps)}).
    """
    methods = list(dict.fromkeys(curves["method"])) if methods is None else list(methods)
    _require(curves, methods, "sample-efficiency curves")
    steps_ok = None
    for m in methods:
        sub = curves[curves["method"] == m]
        per_step = sub.groupby("env_step")["game"].nunique()
        ok = set(per_step.index[per_step == sub["game"].nunique()])
        steps_ok = ok if steps_ok is None else steps_ok & ok
    steps = np.array(sorted(steps_ok or []))
    if len(steps) == 0:
        raise ValueError("sample-efficiency curves: no env_step has every game for all methods")
    pts, cis = {}, {}
    for m in methods:
        sub = curves[curves["method"] == m]
        p, c = np.empty(len(steps)), np.empty((2, len(steps)))
        for i, s in enumerate(steps):
            mat = score_matrix(sub[sub["env_step"] == s], m)  # (runs, games)
            vals = bootstrap_statistic(mat, _metrics_batch, reps, method_seed(seed, f"{m}@{s}"))
            p[i] = point_estimates(mat)[METRICS.index("iqm")]
            c[:, i] = np.percentile(vals[:, METRICS.index("iqm")], [2.5, 97.5])
        pts[m], cis[m] = p, c
    return steps, pts, cis


def plot_sample_efficiency(curves: pd.DataFrame, out_png: str | Path,
                           methods: Sequence[str] | None = None,
                           reps: int = DEFAULT_PROFILE_REPS, seed: int = 0) -> plt.Figure:
    """IQM human-normalised score against environment steps (periodic evaluations)."""
    steps, pts, cis = sample_efficiency(curves, methods, reps, seed)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_utils.plot_sample_efficiency_curve(
        steps / 1000.0, pts, cis, algorithms=list(pts), colors=method_colors(list(pts)), ax=ax,
        xlabel="Environment steps (thousands)", ylabel="IQM human-normalised score",
        labelsize="large", ticklabelsize="medium")
    ax.legend([plt.Line2D([], [], color=c, lw=2) for c in method_colors(list(pts)).values()],
              list(pts), loc="upper left", fontsize="small")
    ax.set_title("Sample efficiency (IQM, 95% CIs)")
    save_figure(fig, out_png)
    return fig
