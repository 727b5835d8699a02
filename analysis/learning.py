"""Does the agent learn? Our runs against a random policy measured under the same protocol
(``drama.random_policy``): the CPU learning check's table and learning-curve figure
(config/cpu_learning.yaml, docs/notes/cpu-learning.md).

Inputs are episode tables with the columns of a run's eval.parquet (game, variant, seed,
env_step, episode, return, length, final): the agent's runs and the random policy's episodes.

Statistics, per game: the agent's score is the mean final-evaluation return over its runs
(each run's score is the mean of its final episodes; equal episode counts make this the mean
of all final episodes); its standard error is the pooled final episodes' sample standard
deviation over the square root of their number (with a handful of seeds a standard error over
seed means is no estimate at all; the per-seed scores are in the table so the spread across
seeds can be read). The random policy's standard error is the same over its episodes. The gap
is agent - random, SE(gap) = sqrt(SE_agent^2 + SE_random^2), z = gap / SE(gap), and the verdict
is "learned" when z >= 3 (the issue's bar), "below random" when z <= -3, else "not separable".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.figures import method_colors, save_figure
from analysis.scores import read_parquet
from analysis.tables import DASH, md_row, mkparent, write_html_table

EPISODE_COLUMNS = ["game", "variant", "seed", "env_step", "episode", "return", "length", "final"]
"""A run's eval.parquet columns (drama.run_io.EVAL_COLUMNS; analysis runs without drama
installed, workflow/envs/analysis.yaml, so a test checks the two equal)."""
Z_BAR = 3.0
PALETTE_SAMPLED = "#009E73"  # Okabe-Ito green (the variant and random take blue and orange)


def load_episodes(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Concatenate eval.parquet-like episode tables, checking their columns."""
    frames = []
    for p in paths:
        df = read_parquet(p, "episode table")
        missing = [c for c in EPISODE_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{p}: not an episode table (missing columns {missing})")
        frames.append(df[EPISODE_COLUMNS])
    if not frames:
        raise ValueError("no episode tables given")
    return pd.concat(frames, ignore_index=True)


def _se(x: pd.Series) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def verdict(z: float) -> str:
    if not np.isfinite(z):
        return "n/a"
    return "learned" if z >= Z_BAR else "below random" if z <= -Z_BAR else "not separable"


def learning_frame(agent: pd.DataFrame, random: pd.DataFrame, variant: str = "drama",
                   games: Sequence[str] | None = None,
                   sampled: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per game and evaluation policy: ``greedy`` (the runs' final evaluations, the
    official protocol and the runs' scores) and, when ``sampled`` episodes are given
    (drama.evaluate_run), ``sampled``: per-seed scores, agent and random mean +- SE, gap, z,
    verdict."""
    final = agent[(agent["variant"] == variant) & agent["final"].astype(bool)]
    games = list(games) if games is not None else sorted(final["game"].unique())
    policies = [("greedy", final)]
    if sampled is not None:
        policies.append(("sampled", sampled[sampled["variant"] == variant]))
    rows = []
    for g in games:
        r = random[random["game"] == g]
        if r.empty:
            raise ValueError(f"no random-policy episodes for {g}")
        mean_r, se_r = float(r["return"].mean()), _se(r["return"])
        for policy, episodes in policies:
            a = episodes[episodes["game"] == g]
            if a.empty:
                raise ValueError(f"no {policy} final evaluation of variant {variant!r} on {g}")
            seeds = a.groupby("seed")["return"].mean()
            mean_a, se_a = float(a["return"].mean()), _se(a["return"])
            se_gap = float(np.hypot(se_a, se_r))
            gap = mean_a - mean_r
            z = gap / se_gap if se_gap > 0 else float("nan")
            rows.append({"game": g, "policy": policy,
                         "seed_scores": {int(s): float(v) for s, v in seeds.items()},
                         "agent_mean": mean_a, "agent_se": se_a, "agent_episodes": len(a),
                         "random_mean": mean_r, "random_se": se_r, "random_episodes": len(r),
                         "gap": gap, "gap_se": se_gap, "z": z, "verdict": verdict(z)})
    return pd.DataFrame(rows)


def _num(x: float) -> str:
    return DASH if not np.isfinite(x) else f"{x:,.1f}"


def write_learning_table(frame: pd.DataFrame, out_md: str | Path, out_csv: str | Path,
                         out_html: str | Path | None = None, steps: int | None = None) -> None:
    """Markdown, CSV (flat: one seed_<n> column per seed) and an HTML page for the report."""
    seeds = sorted({s for d in frame["seed_scores"] for s in d})
    header = ["Game", "Policy", *[f"seed {s}" for s in seeds], "Agent (mean ± SE)",
              "Random (mean ± SE)", "Gap ± SE", "z", "Verdict"]
    rows = []
    for _, r in frame.iterrows():
        rows.append([r["game"], r["policy"],
                     *[_num(r["seed_scores"].get(s, np.nan)) for s in seeds],
                     f"{_num(r['agent_mean'])} ± {_num(r['agent_se'])} (n={r['agent_episodes']})",
                     f"{_num(r['random_mean'])} ± {_num(r['random_se'])} "
                     f"(n={r['random_episodes']})",
                     f"{_num(r['gap'])} ± {_num(r['gap_se'])}",
                     DASH if not np.isfinite(r["z"]) else f"{r['z']:.1f}", r["verdict"]])
    at = f" after {steps:,} agent steps" if steps else ""
    note = (f"Final-evaluation return per seed{at}: greedy = the run's final evaluation (argmax "
            "actions, the official protocol, the run's score); sampled = the same checkpoint and "
            "episode seeds with actions sampled from the policy (drama.evaluate_run). Agent and "
            "random: mean ± standard error over the pooled episodes (n); z = gap / SE(gap); "
            f"learned: z >= {Z_BAR:g}. Random: uniform actions under the same protocol and "
            "evaluation (drama.random_policy).")
    mkparent(out_md)
    lines = [md_row(header), md_row(["---"] * len(header)), *(md_row(r) for r in rows), "",
             note, ""]
    Path(out_md).write_text("\n".join(lines))
    flat = frame.drop(columns=["seed_scores"]).copy()
    for s in seeds:
        flat.insert(2 + seeds.index(s), f"seed_{s}",
                    [d.get(s, np.nan) for d in frame["seed_scores"]])
    mkparent(out_csv)
    flat.to_csv(out_csv, index=False)
    if out_html is not None:
        write_html_table(out_html, "Does it learn? Agent vs random policy", header, rows,
                         note=note)


def plot_learning_curves(agent: pd.DataFrame, random: pd.DataFrame, out_png: str | Path,
                         variant: str = "drama", games: Sequence[str] | None = None,
                         sampled: pd.DataFrame | None = None):
    """Per game: each seed's (greedy) evaluation returns against agent steps (periodic
    evaluations and the final one), their mean, the sampled-action evaluation of the final
    checkpoints (mean ± 1 SE over the pooled episodes) when given, and the random policy's
    mean ± 1 SE band."""
    import matplotlib.pyplot as plt

    runs = agent[agent["variant"] == variant]
    games = list(games) if games is not None else sorted(runs["game"].unique())
    if not games:
        raise ValueError(f"no evaluations of variant {variant!r}")
    colors = method_colors([variant, "random"])
    fig, axes = plt.subplots(1, len(games), figsize=(4.2 * len(games), 3.4), squeeze=False)
    for ax, g in zip(axes[0], games, strict=True):
        run = runs[runs["game"] == g]
        if run.empty:
            raise ValueError(f"no evaluations of variant {variant!r} on {g}")
        points = run.groupby(["seed", "env_step"])["return"].mean().reset_index()
        for i, (_, pts) in enumerate(points.groupby("seed")):
            ax.plot(pts["env_step"], pts["return"], color=colors[variant], alpha=0.35, lw=1,
                    marker="o", ms=3, label="runs (one per seed)" if i == 0 else None)
        mean = points.groupby("env_step")["return"].mean()
        ax.plot(mean.index, mean.values, color=colors[variant], lw=2.2,
                label=f"{variant} greedy, mean of {points['seed'].nunique()} seeds")
        if sampled is not None:
            sp = sampled[(sampled["variant"] == variant) & (sampled["game"] == g)]
            if not sp.empty:
                ax.errorbar([sp["env_step"].max()], [sp["return"].mean()],
                            yerr=[_se(sp["return"])], color=PALETTE_SAMPLED, marker="D",
                            ms=6, capsize=3, ls="none",
                            label=f"{variant} sampled actions, final checkpoints")
        r = random[random["game"] == g]["return"]
        if not r.empty:
            m, se = float(r.mean()), _se(r)
            ax.axhline(m, color=colors["random"], lw=1.5, ls="--",
                       label=f"random policy (n={len(r)}), ± 1 SE")
            if np.isfinite(se):
                ax.axhspan(m - se, m + se, color=colors["random"], alpha=0.2, lw=0)
        ax.set_title(g)
        ax.set_xlabel("agent steps")
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)
    axes[0][0].set_ylabel("evaluation return (greedy)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 2), frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout()
    save_figure(fig, out_png)
    return fig
