"""Command line: ``python -m analysis aggregate FILE [FILE ...] [--reps N] [--seed S] --json``.

Subcommands:
    aggregate  human-normalised mean/median/IQM/optimality gap with 95% stratified-bootstrap
               CIs per method (a published JSON's method is its file stem; the project's
               scores.parquet gives one method per variant); --json prints the JSON contract.
    table      the per-game table (Markdown/CSV/LaTeX) for project variants and baselines.
    reproduce  the reproduction table: one method's runs against Drama's published per-game
               means and aggregates, with a verdict per row (analysis.reproduction).
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


def _reproduce(args: argparse.Namespace) -> int:
    from analysis import reproduction as R

    df = load_all(args.files)
    games = _games(args.games)
    per_game = R.reproduction_per_game(df, args.method, R.load_drama_per_game(), games=games,
                                       reps=args.reps, seed=args.seed)
    aggs = R.reproduction_aggregates(df, args.method, R.load_drama_aggregates(), games=games,
                                     reps=args.reps, seed=args.seed)
    note = R.write_reproduction_table(per_game, aggs, args.method, args.reps, f"{args.out}.md",
                                      f"{args.out}.csv", f"{args.out}.tex", f"{args.out}.html")
    print(Path(f"{args.out}.md").read_text().split("\n\n")[0])
    print(f"\n{note}\nwrote {args.out}.md, .csv, .tex, .html")
    return 0


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
    r.add_argument("--out", required=True, help="output path without suffix")
    r.set_defaults(func=_reproduce)
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
