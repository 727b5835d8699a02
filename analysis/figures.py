"""Paper figures: the reproduction figure (our CIs against the published values), aggregate
intervals (rliable.plot_utils), ablations, performance profiles, probability of improvement,
sample-efficiency curves, and the sequence-length scaling of the sequence models.

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
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402
import pandas as pd  # noqa: E402
from rliable import plot_utils  # noqa: E402

from analysis.aggregates import (  # noqa: E402
    DEFAULT_POI_REPS,
    DEFAULT_PROFILE_REPS,
    METRICS,
    metrics_batch,
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


def _axes_centre(fig: plt.Figure) -> float:
    """Figure x of the middle of the axes' span: a suptitle there sits over the panels, not
    over the panels plus the method labels on their left (which bbox_inches="tight" keeps)."""
    boxes = [ax.get_position() for ax in fig.axes if ax.get_visible()]
    return (min(b.x0 for b in boxes) + max(b.x1 for b in boxes)) / 2


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
                 f"({'/'.join(str(g) for g in n_games)} games)", y=1 + 0.5 / height,
                 x=_axes_centre(fig))
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
    ax0.set_title("Per game: difference of mean human-normalised scores")
    ax0.legend(handles=[Patch(color=OKABE_ITO[0], label=f"{variant} better"),
                        Patch(color=OKABE_ITO[5], label=f"{reference} better")],
               loc="lower right", fontsize="small")
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


def profile_taus(mats, points: int = 81) -> np.ndarray:
    """Thresholds from 0 to just past the largest score of any run (at least 1 = human):
    the profile is 0 beyond the largest score, so a longer axis only adds empty space."""
    top = max(float(np.nanmax(m)) for m in mats)
    hi = max(1.0, top)
    step = 10 ** np.floor(np.log10(hi)) / 2  # round up to a half-decade step: 1.2 -> 1.5
    return np.linspace(0.0, np.ceil(hi * 1.02 / step) * step, points)


def plot_performance_profiles(df: pd.DataFrame, methods: Sequence[str], out_png: str | Path,
                              taus: np.ndarray | None = None, reps: int = DEFAULT_PROFILE_REPS,
                              seed: int = 0) -> plt.Figure:
    """Score distributions (fraction of runs with HNS > tau) with 95% CI bands, on the games
    all ``methods`` share."""
    _require(df, methods, "performance profiles")
    mats = matrices(df, methods)
    taus = profile_taus(mats.values()) if taus is None else np.asarray(taus, float)
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
    ax.set_xlim(taus[0], taus[-1])
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
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(keys) + 1.4))
    colors = PALETTE[: len(keys)]
    for i, k in enumerate(keys):
        lo, hi = ci[k]
        ax.barh(i, max(hi - lo, 0.004), left=lo, height=0.6, color=colors[i], alpha=0.75)
        ax.plot([est[k]] * 2, [i - 0.3, i + 0.3], color="k", lw=1.5)
        ax.text(1.03, i, f"{est[k]:.2f} [{lo:.2f}, {hi:.2f}]", va="center", ha="left",
                fontsize="medium", transform=ax.get_yaxis_transform())  # as the tick labels
    x_names = [k.split("|")[0] for k in keys]
    y_names = [k.split("|")[1] for k in keys]
    ax.set_yticks(range(len(keys)), [f"P({x} > {y})" for x, y in zip(x_names, y_names,
                                                                      strict=True)])
    ax.axvline(0.5, color="k", ls="--", lw=0.8, alpha=0.6)
    ax.set_xlim(0, 1)
    ax.set_ylim(len(keys) - 0.5, -0.5)  # first pair on top
    ax.set_xlabel("Probability of improvement (bar: 95% CI, tick: point estimate)")
    ax.grid(axis="x", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title("Probability of improvement", pad=10)
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
            vals = bootstrap_statistic(mat, metrics_batch, reps, method_seed(seed, f"{m}@{s}"))
            p[i] = point_estimates(mat)[METRICS.index("iqm")]
            c[:, i] = np.percentile(vals[:, METRICS.index("iqm")], [2.5, 97.5])
        pts[m], cis[m] = p, c
    return steps, pts, cis


def plot_sample_efficiency(curves: pd.DataFrame, out_png: str | Path,
                           methods: Sequence[str] | None = None,
                           reps: int = DEFAULT_PROFILE_REPS, seed: int = 0) -> plt.Figure:
    """IQM human-normalised score against environment steps (periodic evaluations).

    Each method has its own line style and marker and its CI band is outlined in its colour,
    so coinciding curves stay visible (the first method is drawn last, on top). Runs without
    periodic evaluations (``eval_every`` >= steps) give a figure that says so.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if curves.empty:
        ax.text(0.5, 0.5, "No periodic evaluations in these runs\n(the evaluation interval "
                "eval_every is not below the run length),\nso there is no learning curve.",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        ax.set_title("Sample efficiency")
        save_figure(fig, out_png)
        return fig
    steps, pts, cis = sample_efficiency(curves, methods, reps, seed)
    colors = method_colors(list(pts))
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D", "v", "P"]
    handles = {}
    for i, m in reversed(list(enumerate(pts))):  # the first method last, on top
        ax.fill_between(steps, cis[m][0], cis[m][1], facecolor=colors[m], alpha=0.12,
                        edgecolor=colors[m], linestyle=styles[i % 4], linewidth=1.0)
        # later methods: wider lines and larger hollow markers, so that a curve that coincides
        # with an earlier one still shows around it
        (handles[m],) = ax.plot(steps, pts[m], linestyle=styles[i % 4], marker=markers[i % 6],
                                color=colors[m], lw=2 + 1.5 * i, ms=6 + 4 * i,
                                mfc=colors[m] if i == 0 else "none", mew=2, label=m,
                                zorder=3 + len(pts) - i)
    ax.xaxis.set_major_formatter(FuncFormatter(_steps_label))
    if len(steps) <= 8:
        ax.set_xticks(steps)
    ax.set_xlabel("Environment steps")
    ax.set_ylabel("IQM human-normalised score")
    ax.grid(alpha=0.3)
    ax.legend([handles[m] for m in pts], list(pts), loc="best", fontsize="small")
    n_games = curves["game"].nunique()
    ax.set_title(f"Sample efficiency: IQM over {n_games} game(s), 95% CIs")
    save_figure(fig, out_png)
    return fig


def _steps_label(x: float, _pos=None) -> str:
    """Environment steps as 75, 1.5k, 100k, 1M."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:g}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


# ------------------------------------------------------------------ reproduction
VERDICT_COLORS = {"reproduced": OKABE_ITO[2], "below": OKABE_ITO[5], "above": OKABE_ITO[0]}


def plot_reproduction(per_game: pd.DataFrame, aggs: pd.DataFrame, out_png: str | Path,
                      method: str = "drama") -> plt.Figure:
    """Per game: ours minus the published mean in human-normalised units with the interval of
    the difference (bar) and the equivalence margin (shaded), the verdict at the right; second
    panel: the same for mean, median and IQM.

    ``per_game``/``aggs``: ``reproduction.reproduction_per_game``/``reproduction_aggregates``.
    """
    n = len(per_game)
    fig, (ax0, ax1) = plt.subplots(
        2, 1, figsize=(8, 0.32 * n + 3.4), gridspec_kw={"height_ratios": [max(n, 3), 3]})
    ours_c = OKABE_ITO[0]

    def panel(ax, labels, d, lo, hi, margin, verdicts, xlabel):
        y = np.arange(len(labels))
        has = np.isfinite(lo)
        ax.errorbar(d[has], y[has], xerr=[d[has] - lo[has], hi[has] - d[has]], fmt="o",
                    color=ours_c, ecolor=ours_c, elinewidth=3, capsize=3, ms=5,
                    label=f"{method} − published: interval")
        point = ~has & np.isfinite(d)
        ax.plot(d[point], y[point], "o", color=ours_c, mfc="white", ms=5)
        for j, i in enumerate(np.flatnonzero(np.isfinite(margin) & np.isfinite(d))):
            ax.fill_betweenx([i - 0.4, i + 0.4], -margin[i], margin[i], color="0.85", lw=0,
                             zorder=0, label="equivalence margin" if j == 0 else None)
        ax.set_yticks(y, labels)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.axvline(0, color="0.3", lw=0.8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel(xlabel)
        for i, v in enumerate(verdicts):
            ax.text(1.01, i, v, transform=ax.get_yaxis_transform(), va="center",
                    fontsize="small", color=VERDICT_COLORS.get(v, "0.4"))

    panel(ax0, list(per_game["game"]), per_game["hns_diff"].to_numpy(float),
          per_game["hns_diff_low"].to_numpy(float), per_game["hns_diff_high"].to_numpy(float),
          per_game["hns_margin"].to_numpy(float), list(per_game["verdict"]),
          "Ours − published, human-normalised (human − random = 1)")
    if len(ax0.get_legend_handles_labels()[0]):
        ax0.legend(loc="best", fontsize="small")
    runs = sorted(set(per_game["runs"]))
    ax0.set_title(f"Reproduction of the published results: {method}, "
                  f"{'/'.join(map(str, runs))} runs per game", pad=10)
    hns = aggs[aggs["metric"] != "superhuman_games"]
    panel(ax1, [f"{lab} ({g} games)" for lab, g in zip(hns["label"], hns["games"],
                                                       strict=True)],
          hns["diff"].to_numpy(float), hns["diff_low"].to_numpy(float),
          hns["diff_high"].to_numpy(float), hns["margin"].to_numpy(float),
          list(hns["verdict"]), "Aggregate: ours − published (human-normalised)")
    fig.tight_layout()
    save_figure(fig, out_png)
    return fig


# ------------------------------------------------------------------ sequence scaling
def _plain_log_axis(axis, values: np.ndarray) -> None:
    """Log-scale axis labelled in plain numbers (20, 50, 100) instead of 2x10^1. Data spanning
    less than two decades would show at most two decade labels, so the 2x and 5x minor ticks
    (3x too within one decade) get labels as well."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    span = v.max() / v.min() if len(v) else np.inf
    if span < 100:
        axis.set_minor_locator(LogLocator(subs=(2, 3, 5) if span < 10 else (2, 5)))
        axis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    else:
        axis.set_minor_formatter(NullFormatter())


def plot_sequence_scaling(bench: pd.DataFrame, out_png: str | Path,
                          source: str = "sequence benchmark") -> plt.Figure:
    """benchmarks/sequence_speed.py's table -> fwd+bwd time and peak memory of one sequence
    layer against the sequence length L (log-log), one line per kind (backend)."""
    need = ["kind", "backend", "length", "ms_fwd_bwd", "peak_mem_mb", "status", "batch",
            "d_model", "dtype", "device"]
    missing = [c for c in need if c not in bench.columns]
    if missing:
        raise ValueError(f"{source}: missing columns {missing}")
    ok = bench[bench["status"] == "ok"]
    if ok.empty:
        raise ValueError(f"{source}: no successful measurement (status column: "
                         f"{sorted(set(bench['status']))})")
    ok = ok.assign(label=ok["kind"] + " (" + ok["backend"] + ")")
    labels = list(dict.fromkeys(ok["label"]))
    colors = method_colors(labels)
    first = ok.iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, col, ylabel in [(axes[0], "ms_fwd_bwd", "fwd+bwd time (ms)"),
                            (axes[1], "peak_mem_mb", "peak memory (MB)")]:
        for label in labels:
            sub = ok[ok["label"] == label].sort_values("length")
            ax.plot(sub["length"], sub[col], "o-", color=colors[label], label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        lengths = sorted(set(ok["length"]))
        ax.set_xticks(lengths, [str(int(v)) for v in lengths])
        ax.xaxis.set_minor_formatter(NullFormatter())
        _plain_log_axis(ax.yaxis, ok[col].to_numpy(float))
        ax.set_xlabel("sequence length L")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle(f"One sequence layer, B={first['batch']}, d={first['d_model']}, "
                 f"{first['dtype']}, device {first['device']} (failed/OOM points omitted)")
    fig.tight_layout()
    save_figure(fig, out_png)
    return fig
