"""Did it reproduce? Our runs of a method against its published per-game means and aggregates.

Per game: our mean score over seeds, the published mean and where it comes from, the
difference (ours - published) with its interval (``analysis.verdicts``: a t interval that counts
the published mean's own sampling error, from the published runs when they are available, else
from our runs' spread standing in for theirs), and a verdict:

    reproduced          the difference's interval lies within the equivalence margin
    below               the interval lies below zero
    above               the interval lies above zero
    inconclusive        neither (too few runs or too much spread to tell)
    no published value  the published table has no value for the game
    too few runs        fewer than ``min_runs`` runs (no spread from one run)

The same for the aggregates (mean, median and IQM human-normalised score, games at or above
human): our value with the stratified-bootstrap CI of ``analysis.aggregates`` (the numbers of the
aggregates table) and the difference's bootstrap interval (``verdicts.aggregate_difference``);
an aggregate is only comparable on the games the published one covers, so a grid with other
games gets ``too few games``. How often each verdict is right: ``verdicts.simulate_rates``
(docs/analysis.md).

Published sides: Drama's numbers (below), a per-game means CSV ``game,published[,runs]``
(``load_published_means_csv``) or any method's per-run scores (``published_from_runs``).

Published Drama numbers: ``data/drama_paper/`` (copied unchanged from the project's reference
set; its README is the provenance). ``per_game.csv`` has a primary column ``Drama_paper`` (the
paper's own table; empty until someone reads it) and a secondary column ``Drama_secondary``
(another paper's comparison table) with its ``secondary_status``; a primary value wins over a
secondary one, so filling the ``Drama_paper`` column is the whole correction. ``aggregates.csv``
likewise has primary rows (``*_paper``) that win over the secondary rows when filled. Drama
publishes no per-run scores: the number of runs behind its means is a setting
(``Settings.published_runs``, 5 from the paper's protocol) and our spread stands in for theirs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from scipy import stats

from analysis import verdicts as V
from analysis.aggregates import (
    CI_SIZE,
    DEFAULT_REPS,
    aggregate,
    bootstrap_statistic,
    method_seed,
    superhuman_games,
)
from analysis.scores import ATARI100K_GAMES, DATA_DIR, HUMAN_SCORES, RANDOM_SCORES
from analysis.scores import canonical_game, human_normalise, score_matrix
from analysis.verdicts import ABOVE, BELOW, INCONCLUSIVE, REPRODUCED, Settings

DRAMA_PAPER_DIR = DATA_DIR / "drama_paper"
DRAMA_PER_GAME_CSV = DRAMA_PAPER_DIR / "per_game.csv"
DRAMA_AGGREGATES_CSV = DRAMA_PAPER_DIR / "aggregates.csv"

NO_PUBLISHED, TOO_FEW_RUNS, TOO_FEW_GAMES = "no published value", "too few runs", "too few games"
VERDICTS = (REPRODUCED, BELOW, ABOVE, INCONCLUSIVE, NO_PUBLISHED, TOO_FEW_RUNS, TOO_FEW_GAMES)
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


def published_means(means: Mapping[str, float], source: str, status: str = "",
                    runs: Mapping[str, int] | None = None) -> pd.DataFrame:
    """A published ``{game: mean}`` mapping in the per-game form of ``load_drama_per_game``
    (``runs``: the runs behind each mean, where known)."""
    out = pd.DataFrame({"published": pd.Series(means, dtype=float)})
    out.index.name = "game"
    out = out.assign(source=source, status=status)
    if runs is not None:
        out["runs"] = pd.Series(runs, dtype=float).reindex(out.index)
    return out


def load_published_means_csv(path: str | Path) -> pd.DataFrame:
    """A per-game means CSV ``game,published[,runs]`` -> the per-game form (source: the file
    name, status "csv"); game names in any usual spelling."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"published file not found: {path}")
    raw = pd.read_csv(path)
    missing = [c for c in ("game", "published") if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; want game,published[,runs], "
                         f"have {list(raw.columns)}")
    games = [canonical_game(str(g)) for g in raw["game"]]
    dup = sorted({g for g in games if games.count(g) > 1})
    if dup:
        raise ValueError(f"{path}: games listed twice: {dup}")
    values = pd.to_numeric(raw["published"], errors="coerce")
    bad = [g for g, v, r in zip(games, values, raw["published"], strict=True)
           if pd.isna(v) and pd.notna(r)]
    if bad:
        raise ValueError(f"{path}: non-numeric published values for {bad}")
    runs = None
    if "runs" in raw.columns:
        r = pd.to_numeric(raw["runs"], errors="coerce")
        wrong = [g for g, v, orig in zip(games, r, raw["runs"], strict=True)
                 if pd.notna(orig) and (pd.isna(v) or v < 2 or v != int(v))]
        if wrong:
            raise ValueError(f"{path}: runs must be whole numbers >= 2; bad for {wrong}")
        runs = dict(zip(games, r, strict=True))
    return published_means(dict(zip(games, values, strict=True)), path.name, "csv", runs)


def published_from_runs(df: pd.DataFrame, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A method's per-run scores (long table, one method) as the published side:
    (per-game frame with runs and sd, aggregates frame computed from the runs)."""
    if df["method"].nunique() != 1:
        raise ValueError(f"{source}: one published method at a time, got "
                         f"{sorted(df['method'].unique())}")
    g = df.groupby("game")["score"]
    few = sorted(g.size()[g.size() < 2].index)
    if few:
        raise ValueError(f"{source}: per-run published data needs >= 2 runs per game; "
                         f"{few} have fewer (give a means CSV instead)")
    games = [x for x in ATARI100K_GAMES if x in g.groups]
    per_game = pd.DataFrame({"published": g.mean(), "sd": g.std(ddof=1), "runs": g.size()},
                            ).reindex(games)
    per_game.index.name = "game"
    per_game = per_game.assign(source=source, status="per-run")
    hns = human_normalise(df)
    mat = score_matrix(hns, df["method"].iloc[0], games)
    k = np.isfinite(mat).sum(0)
    vals = V.agg_values(mat[None], k)[0]
    aggs = pd.DataFrame({"published": vals, "source": source, "status": "per-run"},
                        index=pd.Index(V.AGG_METRICS, name="metric"))
    return per_game, aggs


def aggregates_from_means(per_game: pd.DataFrame, source: str) -> pd.DataFrame:
    """Published aggregates computable from per-game means alone (all 26 games needed): mean,
    median and games at or above human; the IQM needs the runs (no published value)."""
    vals = per_game["published"].reindex(ATARI100K_GAMES)
    rows = {m: np.nan for m in V.AGG_METRICS}
    if vals.notna().all():
        hns = np.array([(v - RANDOM_SCORES[g]) / (HUMAN_SCORES[g] - RANDOM_SCORES[g])
                        for g, v in vals.items()])
        rows.update(mean=hns.mean(), median=np.median(hns),
                    superhuman_games=float(superhuman_games(hns)))
    return pd.DataFrame({"published": pd.Series(rows), "source": source,
                         "status": "from per-game means"},
                        index=pd.Index(V.AGG_METRICS, name="metric"))


# ------------------------------------------------------------------ verdicts
def verdict(low: float, high: float, margin: float, published: float, runs: int,
            min_runs: int = MIN_RUNS) -> str:
    """The verdict for one number: the interval [low, high] of ours - published, from
    ``runs`` of our runs, against the equivalence margin."""
    if runs < min_runs:
        return TOO_FEW_RUNS
    if published is None or not np.isfinite(published):
        return NO_PUBLISHED
    assert low <= high, (low, high)
    return V.classify(low, high, margin)


def mean_ci(scores: np.ndarray, level: float = CI_SIZE) -> tuple[float, float, float, float]:
    """(mean, sd, low, high): the mean of ``scores`` (one per run) and its t interval. Fewer
    than two runs: sd and interval NaN."""
    x = np.asarray(scores, float)
    assert x.ndim == 1 and len(x) >= 1, x.shape
    if len(x) < 2:
        return float(x.mean()), np.nan, np.nan, np.nan
    sd = float(x.std(ddof=1))
    half = stats.t.ppf((1 + level) / 2, len(x) - 1) * sd / np.sqrt(len(x))
    return float(x.mean()), sd, float(x.mean() - half), float(x.mean() + half)


def _hns(game: str, value: float) -> float:
    lo, hi = RANDOM_SCORES[game], HUMAN_SCORES[game]
    return (value - lo) / (hi - lo)


def _published_row(published: pd.DataFrame, game: str, s: Settings):
    """(value, source, status, runs, sd) of a game; sd NaN: means only."""
    if game not in published.index:
        return np.nan, "", "missing", np.nan, np.nan
    r = published.loc[game]
    runs = r.get("runs", np.nan)
    runs = float(s.published_runs) if pd.isna(runs) else float(runs)
    sd = r.get("sd", np.nan)
    return float(r["published"]), r["source"], r["status"], runs, float(sd)


def reproduction_per_game(df: pd.DataFrame, method: str, published: pd.DataFrame,
                          games: Sequence[str] | None = None,
                          settings: Settings = V.DEFAULTS) -> pd.DataFrame:
    """One row per game: runs, our mean, sd and 95% t interval, the published value with its
    runs, source and status, the difference ours - published with its interval and the margin
    (raw and human-normalised), and the verdict.

    Args:
        df: long score table (``analysis.scores``) holding ``method``.
        published: index game, columns published, source, status, and optionally runs (the
            runs behind the mean; default ``settings.published_runs``) and sd (their standard
            deviation; absent or NaN: our spread stands in for theirs).
        games: rows (default: the method's games, in table order); a game without runs is an
            error.
    """
    sub = df[df["method"] == method]
    if sub.empty:
        raise ValueError(f"no scores for method {method!r}; have {sorted(df['method'].unique())}")
    have = set(sub["game"])
    games = [g for g in ATARI100K_GAMES if g in have] if games is None else list(games)
    missing = [g for g in games if g not in have]
    if missing:
        raise ValueError(f"method {method!r} has no runs for games {missing}")
    s = settings
    rows = []
    for g in games:
        scores = sub[sub["game"] == g].sort_values("run")["score"].to_numpy(float)
        n = len(scores)
        mean, sd, lo, hi = mean_ci(scores, s.level)
        pub, source, status, m, pub_sd = _published_row(published, g, s)
        per_run = np.isfinite(pub_sd)
        if n >= 2 and np.isfinite(pub):
            d, d_lo, d_hi = (float(v) for v in V.t_difference(
                mean, sd, n, pub, m, pub_sd if per_run else None,
                s.level if per_run else s.level_means_only))
        else:
            d, d_lo, d_hi = mean - pub, np.nan, np.nan
        margin = V.margin_raw(g, pub if np.isfinite(pub) else 0.0, s)
        span = HUMAN_SCORES[g] - RANDOM_SCORES[g]
        rows.append({
            "game": g, "runs": n, "mean": mean, "sd": sd, "ci_low": lo, "ci_high": hi,
            "published": pub, "published_runs": m if np.isfinite(pub) else np.nan,
            "published_spread": ("" if not np.isfinite(pub) else
                                 "published runs" if per_run else "ours for theirs"),
            "source": source, "status": status, "diff": d, "diff_low": d_lo,
            "diff_high": d_hi, "margin": margin,
            "verdict": verdict(d_lo, d_hi, margin, pub, n, s.min_runs),
            "hns_mean": _hns(g, mean), "hns_ci_low": _hns(g, lo), "hns_ci_high": _hns(g, hi),
            "hns_published": _hns(g, pub), "hns_diff": d / span, "hns_diff_low": d_lo / span,
            "hns_diff_high": d_hi / span, "hns_margin": margin / span,
        })
    return pd.DataFrame(rows)


def _superhuman_batch(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Games at or above human of each resampled matrix x (B, runs, games) -> (B, 1)."""
    return V.superhuman_batch(x, k)[:, None]


def reproduction_aggregates(df: pd.DataFrame, method: str, published: pd.DataFrame,
                            games: Sequence[str] | None = None, reps: int = DEFAULT_REPS,
                            seed: int = 0, settings: Settings = V.DEFAULTS,
                            published_games: Sequence[str] = ATARI100K_GAMES,
                            published_scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per aggregate (mean, median, IQM HNS, games >= human): our point estimate and
    stratified-bootstrap 95% CI over ``games``, the published value, the difference with its
    interval (``verdicts.aggregate_difference``, ``reps`` replicates) and the verdict.

    Mean, median and IQM are ``aggregates.aggregate``'s numbers (same seed, same CIs as the
    aggregates table). A grid whose games differ from ``published_games`` (the games the
    published aggregates cover) gets "too few games": an aggregate over other games is not
    comparable. ``published_scores``: the published method's per-run scores (long table), whose
    own bootstrap then gives the published aggregate's sampling error; otherwise m =
    ``settings.published_runs`` runs per game drawn from ours stand in for theirs.
    """
    s = settings
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
    sub_games = set(df[df["method"] == method]["game"])
    our_games = [g for g in ATARI100K_GAMES if g in sub_games] if games is None else list(games)
    complete = set(published_games) == set(our_games)
    pub = {m: (tuple(published.loc[m, c] for c in PUBLISHED_COLUMNS) if m in published.index
               else (np.nan, "", "missing")) for m in V.AGG_METRICS}
    pub = {m: (float(v), src, st) for m, (v, src, st) in pub.items()}
    values = np.array([pub[m][0] for m in V.AGG_METRICS])
    d = lo = hi = np.full(len(V.AGG_METRICS), np.nan)
    if agg["runs_min"] >= s.min_runs and complete:
        pub_mat = None
        if published_scores is not None:
            pub_df = human_normalise(published_scores)
            pub_mat = score_matrix(pub_df, pub_df["method"].iloc[0], our_games)
        _, d, lo, hi = V.aggregate_difference(
            mat, values, s.published_runs, pub_mat, reps, method_seed(seed, f"{method}#diff"),
            s.level_aggregates)
    margins = dict(zip(V.AGG_METRICS, [s.margin_hns] * 3 + [s.margin_games], strict=True))
    rows = []
    for j, metric in enumerate(V.AGG_METRICS):
        point, c_lo, c_hi = ours[metric]
        value, source, status = pub[metric]
        v = verdict(lo[j], hi[j], margins[metric], value, agg["runs_min"], s.min_runs) \
            if complete or agg["runs_min"] < s.min_runs or not np.isfinite(value) \
            else TOO_FEW_GAMES
        rows.append({"metric": metric, "label": AGGREGATE_LABELS[metric], "games": n_games,
                     "runs": agg["runs_min"], "value": point, "ci_low": c_lo, "ci_high": c_hi,
                     "published": value, "source": source, "status": status,
                     "diff": point - value, "diff_low": lo[j], "diff_high": hi[j],
                     "margin": margins[metric], "verdict": v})
    return pd.DataFrame(rows)


def verdict_counts(frame: pd.DataFrame) -> dict[str, int]:
    """{verdict: number of rows} in VERDICTS order, verdicts that occur only."""
    counts = frame["verdict"].value_counts()
    return {v: int(counts[v]) for v in VERDICTS if v in counts}


# ------------------------------------------------------------------ error rates
def verdict_rates(scores: pd.DataFrame, n: int, settings: Settings = V.DEFAULTS,
                  draws: int = 200, aggregate_draws: int = 100, reps: int = 500,
                  seed: int = 0) -> pd.DataFrame:
    """The rates of each verdict at n of our runs against a means-only published value from
    ``settings.published_runs`` runs, simulated from ``scores`` (one method's per-run scores):
    one row "per game" (all game draws) and one per aggregate."""
    m = settings.published_runs
    per_game = V.simulate_rates(scores, n, m, draws=draws, seed=seed, settings=settings)
    rows = [{"row": "per game", "draws": draws * len(per_game), **V.summarise(per_game)}]
    if aggregate_draws > 0:
        aggs = V.simulate_aggregate_rates(scores, n, m, draws=aggregate_draws, reps=reps,
                                          seed=seed, settings=settings)
        rows += [{"row": AGGREGATE_LABELS[r.pop("metric")], "draws": aggregate_draws, **r}
                 for r in aggs.to_dict("records")]
    return pd.DataFrame(rows)


def workflow_reproduction(scores: pd.DataFrame, method: str, games: Sequence[str] | None,
                          reps: int, seed: int, verdict_config: Mapping, steps: str,
                          outputs: Mapping[str, str | Path]) -> str:
    """The workflow's reproduction rule: verdicts against Drama's published numbers, their
    error rates simulated at the grid's runs per game (``verdict_config["rates"]``), the
    tables and the figure. ``outputs``: md, csv, aggregates_csv, tex, rst, html, rates_csv,
    rates_html, png. Returns the table's note."""
    from analysis.figures import plot_reproduction
    from analysis.reproduction_tables import write_no_rates, write_reproduction_table
    from analysis.scores import load_scores, published_path

    settings = Settings.from_config(dict(verdict_config))
    rates_cfg = dict(verdict_config.get("rates") or {})
    per_game = reproduction_per_game(scores, method, load_drama_per_game(), games=games,
                                     settings=settings)
    aggs = reproduction_aggregates(scores, method, load_drama_aggregates(), games=games,
                                   reps=reps, seed=seed, settings=settings)
    runs = int(per_game["runs"].min())
    rates, source = None, ""
    if runs >= settings.min_runs:
        name = rates_cfg.get("method", "SPR")
        draws, agg_draws = int(rates_cfg.get("draws", 200)), int(rates_cfg.get("aggregate_draws",
                                                                              100))
        rates = verdict_rates(load_scores(published_path(name)), runs, settings, draws=draws,
                              aggregate_draws=agg_draws, seed=seed)
        source = (f"{name}'s published per-run scores (26 games, {draws} draws per game; "
                  f"aggregates {agg_draws} draws)")
    o = outputs
    note = write_reproduction_table(per_game, aggs, method, reps, o["md"], o["csv"], o["tex"],
                                    o["html"], steps=steps, out_rst=o["rst"], settings=settings,
                                    out_aggregates_csv=o["aggregates_csv"], rates=rates,
                                    rates_source=source, out_rates_html=o["rates_html"],
                                    out_rates_csv=o["rates_csv"])
    if rates is None:
        write_no_rates(o["rates_html"], o["rates_csv"], runs, settings)
    plot_reproduction(per_game, aggs, o["png"], method=method)
    return note
