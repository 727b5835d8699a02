"""Did it reproduce? Our runs of a method against its published per-game means and aggregates.

Per game: our mean score over seeds with a percentile-bootstrap 95% CI (runs resampled with
replacement), the published mean and where it comes from, and a verdict:

    reproduced          the published value lies inside our CI (ends included)
    below               our CI lies entirely below the published value
    above               our CI lies entirely above the published value
    no published value  the published table has no value for the game
    too few runs        fewer than ``min_runs`` runs (no CI from one run)

The same for the aggregates (mean, median and IQM human-normalised score, games at or above
human), with the stratified-bootstrap CIs of ``analysis.aggregates`` (the numbers of the
aggregates table); an aggregate is only comparable on the games the published one covers, so a
grid with fewer games gets ``too few games``.

Published Drama numbers: ``data/drama_paper/`` (copied unchanged from the project's reference
set; its README is the provenance). ``per_game.csv`` has a primary column ``Drama_paper`` (the
paper's own table; empty until someone reads it) and a secondary column ``Drama_secondary``
(another paper's comparison table) with its ``secondary_status``; a primary value wins over a
secondary one, so filling the ``Drama_paper`` column is the whole correction. ``aggregates.csv``
likewise has primary rows (``*_paper``) that win over the secondary rows when filled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.aggregates import (
    CI_SIZE,
    DEFAULT_REPS,
    aggregate,
    bootstrap_statistic,
    method_seed,
    superhuman_games,
)
from analysis.scores import ATARI100K_GAMES, DATA_DIR, HUMAN_SCORES, RANDOM_SCORES
from analysis.scores import human_normalise, score_matrix

DRAMA_PAPER_DIR = DATA_DIR / "drama_paper"
DRAMA_PER_GAME_CSV = DRAMA_PAPER_DIR / "per_game.csv"
DRAMA_AGGREGATES_CSV = DRAMA_PAPER_DIR / "aggregates.csv"

REPRODUCED, BELOW, ABOVE = "reproduced", "below", "above"
NO_PUBLISHED, TOO_FEW_RUNS, TOO_FEW_GAMES = "no published value", "too few runs", "too few games"
VERDICTS = (REPRODUCED, BELOW, ABOVE, NO_PUBLISHED, TOO_FEW_RUNS, TOO_FEW_GAMES)
MIN_RUNS = 2

#: per_game.csv value columns, in order of preference, and the source each one stands for
#: (data/drama_paper/README.md says where the secondary numbers were read).
DRAMA_PER_GAME_SOURCES = {
    "Drama_paper": "Drama paper (Wang et al., ICLR 2025)",
    "Drama_secondary": "Chen et al., Table 5 (secondary)",
}
#: aggregate metric -> aggregates.csv rows, in order of preference (primary, secondary)
DRAMA_AGGREGATE_ROWS = {
    "mean": ("normalised_mean_paper", "mean_hns"),
    "median": ("normalised_median_paper", "median_hns"),
    "iqm": ("iqm_paper", "iqm_hns"),
    "superhuman_games": ("superhuman_games_paper", "games_above_human"),
}
AGGREGATE_LABELS = {"mean": "Mean HNS", "median": "Median HNS", "iqm": "IQM HNS",
                     "superhuman_games": "Games >= human"}
PUBLISHED_COLUMNS = ["published", "source", "status"]


# ------------------------------------------------------------------ published numbers
def load_drama_per_game(path: str | Path = DRAMA_PER_GAME_CSV) -> pd.DataFrame:
    """Drama's published per-game means -> index game, columns published, source, status.

    The primary column wins where filled; status is "primary" there, else the secondary
    status (e.g. "row_aligned"; "missing" where the value is empty).
    """
    path = Path(path)
    raw = pd.read_csv(path)
    need = ["game", *DRAMA_PER_GAME_SOURCES, "secondary_status"]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; have {list(raw.columns)}")
    rows = []
    for r in raw.itertuples(index=False):
        rec = r._asdict()
        value, source, status = np.nan, "", str(rec["secondary_status"])
        for col, label in DRAMA_PER_GAME_SOURCES.items():
            if pd.notna(rec[col]):
                value, source = float(rec[col]), label
                status = "primary" if col == "Drama_paper" else status
                break
        rows.append((rec["game"], value, source, status))
    out = pd.DataFrame(rows, columns=["game", *PUBLISHED_COLUMNS]).set_index("game")
    unknown = set(out.index) - set(ATARI100K_GAMES)
    if unknown:
        raise ValueError(f"{path}: unknown games {sorted(unknown)}")
    return out


def load_drama_aggregates(path: str | Path = DRAMA_AGGREGATES_CSV) -> pd.DataFrame:
    """Drama's published aggregates -> index metric (mean, median, iqm, superhuman_games),
    columns published, source, status (the row's source_kind). Primary rows win where filled."""
    path = Path(path)
    raw = pd.read_csv(path)
    need = ["metric", "value", "source_kind", "source"]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; have {list(raw.columns)}")
    raw = raw.set_index("metric")
    rows = []
    for metric, names in DRAMA_AGGREGATE_ROWS.items():
        value, source, status = np.nan, "", "missing"
        for name in names:
            if name in raw.index and pd.notna(raw.loc[name, "value"]):
                r = raw.loc[name]
                value, source, status = float(r["value"]), str(r["source"]), str(r["source_kind"])
                break
        rows.append((metric, value, source, status))
    return pd.DataFrame(rows, columns=["metric", *PUBLISHED_COLUMNS]).set_index("metric")


def published_means(means: Mapping[str, float], source: str, status: str = "") -> pd.DataFrame:
    """A published ``{game: mean}`` mapping in the per-game form of ``load_drama_per_game``."""
    out = pd.DataFrame({"published": pd.Series(means, dtype=float)})
    out.index.name = "game"
    return out.assign(source=source, status=status)


# ------------------------------------------------------------------ verdicts
def verdict(low: float, high: float, published: float, runs: int,
            min_runs: int = MIN_RUNS) -> str:
    """The verdict for one number: our CI [low, high] from ``runs`` runs against published."""
    if runs < min_runs:
        return TOO_FEW_RUNS
    if published is None or not np.isfinite(published):
        return NO_PUBLISHED
    assert low <= high, (low, high)
    if published < low:
        return ABOVE
    if published > high:
        return BELOW
    return REPRODUCED


def mean_ci(scores: np.ndarray, reps: int, rng: int | np.random.RandomState,
            size: float = CI_SIZE) -> tuple[float, float, float]:
    """Mean of ``scores`` (one per run) and its percentile-bootstrap CI (runs resampled with
    replacement, ``reps`` times). Fewer than two runs: the CI is NaN."""
    x = np.asarray(scores, float)
    assert x.ndim == 1 and len(x) >= 1, x.shape
    if len(x) < 2:
        return float(x.mean()), np.nan, np.nan
    rs = rng if isinstance(rng, np.random.RandomState) else np.random.RandomState(rng)
    means = x[rs.randint(0, len(x), size=(reps, len(x)))].mean(1)  # (reps,)
    alpha = 100 * (1 - size) / 2
    lo, hi = np.percentile(means, [alpha, 100 - alpha])
    return float(x.mean()), float(lo), float(hi)


def _hns(game: str, value: float) -> float:
    lo, hi = RANDOM_SCORES[game], HUMAN_SCORES[game]
    return (value - lo) / (hi - lo)


def reproduction_per_game(df: pd.DataFrame, method: str, published: pd.DataFrame,
                          games: Sequence[str] | None = None, reps: int = DEFAULT_REPS,
                          seed: int = 0, min_runs: int = MIN_RUNS) -> pd.DataFrame:
    """One row per game: runs, our mean and 95% CI (raw and human-normalised), the published
    value with its source and status, and the verdict.

    Args:
        df: long score table (``analysis.scores``) holding ``method``.
        published: index game, columns published, source, status (``load_drama_per_game``).
        games: rows (default: the method's games, in table order); a game without runs is an
            error.
        reps, seed: bootstrap replicates and seed (per game: ``method_seed(seed, method/game)``).
        min_runs: fewer runs than this give "too few runs".
    """
    sub = df[df["method"] == method]
    if sub.empty:
        raise ValueError(f"no scores for method {method!r}; have {sorted(df['method'].unique())}")
    have = set(sub["game"])
    games = [g for g in ATARI100K_GAMES if g in have] if games is None else list(games)
    missing = [g for g in games if g not in have]
    if missing:
        raise ValueError(f"method {method!r} has no runs for games {missing}")
    rows = []
    for g in games:
        scores = sub[sub["game"] == g].sort_values("run")["score"].to_numpy(float)
        mean, lo, hi = mean_ci(scores, reps, method_seed(seed, f"{method}/{g}"))
        if g in published.index:
            pub, source, status = (published.loc[g, c] for c in PUBLISHED_COLUMNS)
        else:
            pub, source, status = np.nan, "", "missing"
        rows.append({
            "game": g, "runs": len(scores), "mean": mean, "ci_low": lo, "ci_high": hi,
            "published": float(pub), "source": source, "status": status,
            "verdict": verdict(lo, hi, float(pub), len(scores), min_runs),
            "hns_mean": _hns(g, mean), "hns_ci_low": _hns(g, lo), "hns_ci_high": _hns(g, hi),
            "hns_published": _hns(g, float(pub)),
        })
    return pd.DataFrame(rows)


def _superhuman_batch(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Games at or above human of each resampled matrix x (B, runs, games) -> (B, 1)."""
    game_means = np.nansum(x, 1) / k  # (B, games)
    return (game_means >= 1.0 - 1e-9).sum(1)[:, None].astype(float)


def reproduction_aggregates(df: pd.DataFrame, method: str, published: pd.DataFrame,
                            games: Sequence[str] | None = None, reps: int = DEFAULT_REPS,
                            seed: int = 0, min_runs: int = MIN_RUNS,
                            published_games: Sequence[str] = ATARI100K_GAMES) -> pd.DataFrame:
    """One row per aggregate (mean, median, IQM HNS, games >= human): our point estimate and
    stratified-bootstrap 95% CI over ``games``, the published value, and the verdict.

    Mean, median and IQM are ``aggregates.aggregate``'s numbers (same seed, same CIs as the
    aggregates table). A grid that lacks some of ``published_games`` (the games the published
    aggregates cover) gets "too few games": an aggregate over other games is not comparable.
    """
    df = df if "hns" in df.columns else human_normalise(df)
    agg = aggregate(df, methods=[method], games=games, reps=reps, seed=seed)[method]
    mat = score_matrix(df, method, games)  # (runs, games) HNS
    count = superhuman_games(np.nanmean(mat, 0))
    vals = bootstrap_statistic(mat, _superhuman_batch, reps,
                               method_seed(seed, f"{method}#superhuman"))
    alpha = 100 * (1 - CI_SIZE) / 2
    c_lo, c_hi = np.percentile(vals[:, 0], [alpha, 100 - alpha])
    ours = {m: agg[m] for m in ("mean", "median", "iqm")}
    ours["superhuman_games"] = [float(count), float(c_lo), float(c_hi)]
    n_games = agg["games"]
    complete = set(published_games) <= set(df[df["method"] == method]["game"]) if games is None \
        else set(published_games) <= set(games)
    rows = []
    for metric, (point, lo, hi) in ours.items():
        pub, source, status = ((published.loc[metric, c] for c in PUBLISHED_COLUMNS)
                               if metric in published.index else (np.nan, "", "missing"))
        v = verdict(lo, hi, float(pub), agg["runs_min"], min_runs)
        if v in (REPRODUCED, BELOW, ABOVE) and not complete:
            v = TOO_FEW_GAMES
        rows.append({"metric": metric, "label": AGGREGATE_LABELS[metric], "games": n_games,
                     "runs": agg["runs_min"], "value": point, "ci_low": lo, "ci_high": hi,
                     "published": float(pub), "source": source, "status": status, "verdict": v})
    return pd.DataFrame(rows)


def verdict_counts(frame: pd.DataFrame) -> dict[str, int]:
    """{verdict: number of rows} in VERDICTS order, verdicts that occur only."""
    counts = frame["verdict"].value_counts()
    return {v: int(counts[v]) for v in VERDICTS if v in counts}


# ------------------------------------------------------------------ table
def _num(x: float, digits: int) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:,.{digits}f}"


def _ci(lo: float, hi: float, digits: int) -> str:
    return "—" if not np.isfinite(lo) else f"[{_num(lo, digits)}, {_num(hi, digits)}]"


def reproduction_rows(per_game: pd.DataFrame, aggs: pd.DataFrame) -> tuple[list, list, int]:
    """(header, rows, index of the last per-game row) of the readable reproduction table."""
    header = ["Game", "Runs", "Our mean", "Our 95% CI", "Published", "Verdict", "Source",
              "Status"]
    rows = [[r.game, str(r.runs), _num(r.mean, 1), _ci(r.ci_low, r.ci_high, 1),
             _num(r.published, 1), r.verdict, r.source or "—", r.status]
            for r in per_game.itertuples(index=False)]
    for r in aggs.itertuples(index=False):
        d = 0 if r.metric == "superhuman_games" else 3
        rows.append([f"{r.label} ({r.games} games)", str(r.runs), _num(r.value, d),
                     _ci(r.ci_low, r.ci_high, d), _num(r.published, d), r.verdict,
                     r.source or "—", r.status])
    return header, rows, len(per_game) - 1


def write_reproduction_table(per_game: pd.DataFrame, aggs: pd.DataFrame, method: str,
                             reps: int, out_md: str | Path, out_csv: str | Path,
                             out_tex: str | Path, out_html: str | Path | None = None,
                             steps: str = "", out_rst: str | Path | None = None) -> str:
    """Write the reproduction table (Markdown, CSV, LaTeX, optional HTML and reStructuredText,
    the latter for the report's front page); return its note.

    CSV: raw numbers, one row per game (kind "game") and per aggregate (kind "aggregate").
    """
    from analysis.tables import _md_row, _mkparent, _tex_escape, write_html_table

    header, rows, last_game = reproduction_rows(per_game, aggs)
    counts = verdict_counts(per_game)
    runs = sorted(set(per_game["runs"]))
    note = (f"Method {method!r}; runs per game: {'/'.join(map(str, runs))}"
            f"{'; ' + steps if steps else ''}. Our mean over runs with a 95% percentile-bootstrap "
            f"CI ({reps} reps; aggregates: stratified bootstrap over games, human-normalised). "
            f"Verdict: reproduced = the published value lies inside our CI; below/above = our CI "
            f"lies below/above it. Per game: "
            + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".")
    flat_games = per_game.assign(kind="game", name=per_game["game"], value=per_game["mean"],
                                 games=1)
    flat_aggs = aggs.assign(kind="aggregate", name=aggs["metric"])
    cols = ["kind", "name", "games", "runs", "value", "ci_low", "ci_high", "published",
            "source", "status", "verdict"]
    _mkparent(out_csv)
    pd.concat([flat_games[cols], flat_aggs[cols]], ignore_index=True).to_csv(
        out_csv, index=False, float_format="%.6g")
    md = [_md_row(header), _md_row(["---", "---:", "---:", "---:", "---:", "---", "---", "---"])]
    md += [_md_row(r) for r in rows]
    _mkparent(out_md)
    Path(out_md).write_text("\n".join(md) + f"\n\n{note}\n")
    body = [" & ".join(_tex_escape(c) for c in header) + r" \\", r"\midrule"]
    for i, r in enumerate(rows):
        body.append(" & ".join(_tex_escape(c.replace(">=", r"$\geq$")) for c in r) + r" \\")
        if i == last_game:
            body.append(r"\midrule")
    tex = "\n".join([r"\begin{tabular}{lrrrrlp{5cm}l}", r"\toprule", *body, r"\bottomrule",
                     r"\end{tabular}"])
    _mkparent(out_tex)
    Path(out_tex).write_text(f"% {note}\n% needs \\usepackage{{booktabs}}\n{tex}\n")
    if out_rst is not None:
        _mkparent(out_rst)
        Path(out_rst).write_text(_rst_summary(per_game, aggs))
    if out_html is not None:
        write_html_table(out_html, f"Reproduction: {method} against the published Drama results",
                         header, rows, note=note, rules_after=[last_game],
                         verdict_column="Verdict")
    return note


def _rst_summary(per_game: pd.DataFrame, aggs: pd.DataFrame) -> str:
    """The report's front page: games per verdict, then the aggregates, as two short
    reStructuredText list-tables (narrow enough for the report's description column)."""
    def cell(c: str) -> str:
        return (c.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`")
                .replace("|", "\\|").replace("_", "\\_")) or ".."

    def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
        lines = [".. list-table::", "   :header-rows: 1", ""]
        for r in [header, *rows]:
            lines.append("   * - " + cell(str(r[0])))
            lines += [f"     - {cell(str(c))}" for c in r[1:]]
        return [*lines, ""]

    by_verdict = [[v, ", ".join(per_game.loc[per_game["verdict"] == v, "game"])]
                  for v in VERDICTS if (per_game["verdict"] == v).any()]
    out = table([f"Verdict ({len(per_game)} games)", "Games"], by_verdict)
    rows = []
    for r in aggs.itertuples(index=False):
        d = 0 if r.metric == "superhuman_games" else 3
        rows.append([r.label, f"{_num(r.value, d)} {_ci(r.ci_low, r.ci_high, d)}",
                     _num(r.published, d), r.verdict])
    out += table([f"Aggregate ({int(aggs['games'].iloc[0])} games)", "Ours [95% CI]",
                  "Published", "Verdict"], rows)
    return "\n".join(out)
