"""Command line: ``python -m analysis aggregate FILE [FILE ...] [--reps N] [--seed S] --json``.

Subcommands:
    aggregate  human-normalised mean/median/IQM/optimality gap with 95% stratified-bootstrap
               CIs per method (a published JSON's method is its file stem; the project's
               scores.parquet gives one method per variant); --json prints the JSON contract.
    table      the per-game table (Markdown/CSV/LaTeX) for project variants and baselines.
    reproduce  the reproduction table: one method's runs against Drama's published per-game
               means and aggregates (or --published FILE), with a verdict per row
               (analysis.reproduction, analysis.verdicts).
    power      seeds a grid needs to call a given shortfall "below" with 80% power, simulated
               from one method's per-run scores (analysis.verdicts.seeds_needed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from analysis.aggregates import DEFAULT_REPS, aggregate
from analysis.scores import canonical_game, load_all
from analysis.tables import write_aggregate_table, write_per_game_table

CONTRACT_KEYS = ("mean", "median", "iqm", "optimality_gap", "superhuman_games", "runs")


def _games(arg: str | None) -> list[str] | None:
    return None if not arg else [canonical_game(g) for g in arg.split(",") if g]


def _aggregate(args: argparse.Namespace) -> int:
    df = load_all(args.files)
    agg = aggregate(df, games=_games(args.games), reps=args.reps, seed=args.seed,
                    backend=args.backend)
    if args.json:
        print(json.dumps({m: {k: r[k] for k in CONTRACT_KEYS} for m, r in agg.items()}))
    else:
        print(write_aggregate_table(agg))
        print(f"\nHuman-normalised; 95% stratified-bootstrap CIs, {args.reps} reps, "
              f"seed {args.seed}; runs 'a-b': games have between a and b runs.")
    sizes = {r["games"] for r in agg.values()}
    if len(sizes) > 1:
        print(f"warning: methods cover different numbers of games {sorted(sizes)}; "
              "pass --games to compare on the same games", file=sys.stderr)
    return 0


def _table(args: argparse.Namespace) -> int:
    df = load_all(args.files)
    variants = args.variants.split(",") if args.variants else []
    baselines = args.baselines.split(",") if args.baselines else []
    if not variants and not baselines:
        variants = list(dict.fromkeys(df["method"]))
    write_per_game_table(df, variants, baselines, f"{args.out}.md", f"{args.out}.csv",
                         f"{args.out}.tex", games=_games(args.games))
    print(f"wrote {args.out}.md, {args.out}.csv, {args.out}.tex")
    return 0


def _settings(args: argparse.Namespace):
    from analysis.verdicts import DEFAULTS, Settings

    given = {k: getattr(args, k) for k in ("level", "level_means_only", "level_aggregates",
                                            "margin_hns", "margin_relative", "margin_games",
                                            "published_runs") if getattr(args, k) is not None}
    return Settings(**{**DEFAULTS.as_dict(), **given})


def _published(path: str):
    """(per-game frame, aggregates frame, published games, per-run scores or None)."""
    from analysis import reproduction as R
    from analysis.scores import load_scores

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"published file not found: {p}")
    if p.name.endswith(".csv"):
        head = p.read_text().splitlines()[:1]
        if head and "published" in head[0].split(","):
            per_game = R.load_published_means_csv(p)
            games = list(per_game.index[per_game["published"].notna()])
            return per_game, R.aggregates_from_means(per_game, p.name), games, None
    scores = load_scores(p)
    per_game, aggs = R.published_from_runs(scores, p.name)
    return per_game, aggs, list(per_game.index), scores


def _reproduce(args: argparse.Namespace) -> int:
    from analysis import reproduction as R
    from analysis.reproduction_tables import write_reproduction_table

    settings = _settings(args)
    df = load_all(args.files)
    games = _games(args.games)
    if args.published:
        per_pub, agg_pub, pub_games, pub_scores = _published(args.published)
        label = args.published
    else:
        per_pub, agg_pub = R.load_drama_per_game(), R.load_drama_aggregates()
        pub_games, pub_scores, label = list(R.ATARI100K_GAMES), None, "Drama (published)"
    per_game = R.reproduction_per_game(df, args.method, per_pub, games=games, settings=settings)
    aggs = R.reproduction_aggregates(df, args.method, agg_pub, games=games, reps=args.reps,
                                     seed=args.seed, settings=settings,
                                     published_games=pub_games, published_scores=pub_scores)
    note = write_reproduction_table(per_game, aggs, args.method, args.reps, f"{args.out}.md",
                                    f"{args.out}.csv", f"{args.out}.tex", f"{args.out}.html",
                                    settings=settings,
                                    out_aggregates_csv=f"{args.out}_aggregates.csv")
    print(Path(f"{args.out}.md").read_text().split("\n\n")[0])
    print(f"\nAgainst {label}. {note}\nwrote {args.out}.md, .csv, _aggregates.csv, .tex, "
          ".html")
    return 0


def _power(args: argparse.Namespace) -> int:
    from analysis import reproduction as R
    from analysis import verdicts as V
    from analysis.scores import load_scores

    settings = _settings(args)
    if args.delta <= 0:
        raise ValueError(f"--delta must be > 0 (human-normalised), got {args.delta}")
    if not 0 < args.power < 1:
        raise ValueError(f"--power must be in (0, 1), got {args.power}")
    if args.max_seeds < 2:
        raise ValueError(f"--max-seeds must be >= 2, got {args.max_seeds}")
    scores = load_scores(args.method)
    if scores["method"].nunique() != 1:
        raise ValueError(f"{args.method}: one method per file, got "
                         f"{sorted(scores['method'].unique())}")
    m = settings.published_runs
    cands = list(range(2, args.max_seeds + 1))
    plan = V.seeds_needed(scores, args.delta, m, args.power, cands, args.draws, args.seed,
                          settings)
    print(f"Seeds for {100 * args.power:g}% power to call 'below' a method worse by "
          f"{args.delta:g} human-normalised, against a published mean of {m} runs (means only), "
          f"simulated from {args.method} ({args.draws} draws per n; disjoint runs where the "
          f"file has n + {m}, else drawn with replacement).\n")
    print("| Game | Runs in file | Seeds | Power |\n|---|---:|---:|---:|")
    for r in plan.itertuples(index=False):
        seeds = f"{r.seeds:.0f}" if r.seeds == r.seeds else f"> {args.max_seeds}"
        print(f"| {r.game} | {r.runs_available} | {seeds} | {100 * r.power:.0f}% |")
    agg_n = [n for n in (2, 3, 4, 5, 7, 10, 15, 20, 30) if n <= args.max_seeds]
    found: dict[str, tuple[int, float]] = {}
    for n in agg_n:
        rates = V.simulate_aggregate_rates(scores, n, m, draws=args.aggregate_draws, reps=300,
                                           seed=args.seed, settings=settings,
                                           shifts=(args.delta,))
        for r in rates.to_dict("records"):
            if r["metric"] not in found and r[f"power_{args.delta:g}"] >= args.power:
                found[r["metric"]] = (n, r[f"power_{args.delta:g}"])
        if len(found) == len(V.AGG_METRICS):
            break
    print(f"\n| Aggregate (all games shifted) | Seeds (of {agg_n}) | Power |\n|---|---:|---:|")
    for metric in V.AGG_METRICS:
        n, p = found.get(metric, (None, None))
        print(f"| {R.AGGREGATE_LABELS[metric]} | {n if n else '> ' + str(agg_n[-1])} | "
              f"{'—' if p is None else f'{100 * p:.0f}%'} |")
    return 0


def _add_settings(p: argparse.ArgumentParser) -> None:
    from analysis.verdicts import DEFAULTS as D

    g = p.add_argument_group("verdict settings (config.yaml reproduction:)")
    g.add_argument("--published-runs", type=int, default=None,
                   help=f"runs behind a published mean without its own count "
                        f"(default {D.published_runs})")
    g.add_argument("--level", type=float, default=None,
                   help=f"interval level with published runs (default {D.level})")
    g.add_argument("--level-means-only", type=float, default=None,
                   help=f"interval level with published means only (default "
                        f"{D.level_means_only})")
    g.add_argument("--level-aggregates", type=float, default=None,
                   help=f"aggregates' interval level (default {D.level_aggregates})")
    g.add_argument("--margin-hns", type=float, default=None,
                   help=f"equivalence margin, human-normalised (default {D.margin_hns})")
    g.add_argument("--margin-relative", type=float, default=None,
                   help=f"or this fraction of the published value if larger (default "
                        f"{D.margin_relative})")
    g.add_argument("--margin-games", type=float, default=None,
                   help=f"margin of games >= human (default {D.margin_games})")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("aggregate", help="rliable aggregates with 95%% CIs per method")
    a.add_argument("files", nargs="+", metavar="FILE",
                   help="scores.parquet, {game: [runs]} .json, CURL .json, DreamerV3 .json.gz")
    a.add_argument("--reps", type=int, default=DEFAULT_REPS, help="bootstrap replicates")
    a.add_argument("--seed", type=int, default=0, help="bootstrap seed (reproducible CIs)")
    a.add_argument("--games", default=None, help="comma-separated games (default: each "
                   "method's own)")
    a.add_argument("--backend", choices=("numpy", "rliable"), default="numpy",
                   help="numpy: vectorised, same resamples as rliable; rliable: rliable itself")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.set_defaults(func=_aggregate)
    t = sub.add_parser("table", help="per-game table (Markdown, CSV, LaTeX)")
    t.add_argument("files", nargs="+", metavar="FILE")
    t.add_argument("--variants", default="", help="comma-separated methods shown mean ± std")
    t.add_argument("--baselines", default="", help="comma-separated methods shown as means")
    t.add_argument("--games", default=None, help="comma-separated games (default: variants')")
    t.add_argument("--out", required=True, help="output path without suffix")
    t.set_defaults(func=_table)
    r = sub.add_parser("reproduce", help="verdicts against Drama's published results")
    r.add_argument("files", nargs="+", metavar="FILE", help="e.g. results/scores.parquet")
    r.add_argument("--method", default="drama", help="the method (variant) to compare")
    r.add_argument("--reps", type=int, default=DEFAULT_REPS, help="bootstrap replicates")
    r.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    r.add_argument("--games", default=None, help="comma-separated games (default: the "
                   "method's)")
    r.add_argument("--published", default=None, metavar="FILE",
                   help="the published side: a per-game means CSV (game,published[,runs]) or "
                        "per-run scores (e.g. analysis/data/published/SPR.json); default: "
                        "Drama's published numbers")
    r.add_argument("--out", required=True, help="output path without suffix (writes .md, "
                   ".csv, _aggregates.csv, .tex, .html)")
    _add_settings(r)
    r.set_defaults(func=_reproduce)
    w = sub.add_parser("power", help="seeds a grid needs to call a given shortfall 'below'")
    w.add_argument("--method", required=True, metavar="FILE",
                   help="one method's per-run scores to simulate from, e.g. "
                        "analysis/data/published/SPR.json")
    w.add_argument("--delta", type=float, required=True,
                   help="the shortfall to detect, human-normalised (e.g. 0.1)")
    w.add_argument("--power", type=float, default=0.8, help="wanted power (default 0.8)")
    w.add_argument("--max-seeds", type=int, default=30, help="largest grid tried (default 30)")
    w.add_argument("--draws", type=int, default=200, help="simulated draws per game and n")
    w.add_argument("--aggregate-draws", type=int, default=100,
                   help="simulated draws per n for the aggregates")
    w.add_argument("--seed", type=int, default=0, help="simulation seed")
    _add_settings(w)
    w.set_defaults(func=_power)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "reps", 1) < 1:
        print(f"error: --reps must be >= 1, got {args.reps}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
