"""How often the reproduction verdicts are right, simulated from published per-run scores.

For each n, each game and each draw: n of the method's runs are "ours" and a disjoint m (default
m = n) are the "published" runs, of which only the mean is used (``--per-run``: their spread
too, Welch). The verdict rule of ``analysis.verdicts`` (the settings of config/config.yaml's
``reproduction`` defaults, or the flags) is applied to this perfect reproduction, and to ours
shifted down by 0.1, 0.25 and 0.5 human-normalised (power to call "below"). Also measured: the
old rule (published mean inside a 95% percentile-bootstrap CI of our mean) and the coverage of a
95% percentile-bootstrap and t interval of the mean of n runs (does it contain the mean of all
the game's runs).

    python benchmarks/verdict_rates.py                       # SPR, n = 3, 5, 10, 400 draws
    python benchmarks/verdict_rates.py --method DrQ-eps --n 5 --per-run
    python benchmarks/verdict_rates.py --out results/benchmarks/verdict_rates  # .md + .csv

Prints a Markdown table (per game: rates over all game draws; aggregates: rates over draws of
the whole 26-game grid) and the machine it ran on.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import verdicts as V  # noqa: E402
from analysis.reproduction import AGGREGATE_LABELS  # noqa: E402
from analysis.scores import load_scores, published_path  # noqa: E402


def machine() -> str:
    """e.g. "2 x86_64 CPUs (Intel(R) Xeon(R) Processor)"."""
    import os

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = f" ({line.split(':', 1)[1].strip()})"
                break
    except OSError:
        pass
    return f"{os.cpu_count()} {platform.machine()} CPUs{model}"


def measure(method: str, ns: list[int], m: int | None, draws: int, aggregate_draws: int,
            reps: int, seed: int, settings: V.Settings, per_run: bool) -> pd.DataFrame:
    scores = load_scores(published_path(method) if not Path(method).exists() else method)
    rows = []
    for n in ns:
        mm = n if m is None else m
        per_game = V.simulate_rates(scores, n, mm, draws=draws, seed=seed, settings=settings,
                                    per_run=per_run)
        old = V.interval_coverage(scores, n, mm, draws=draws, seed=seed)
        games = len(per_game)
        rows.append({"n": n, "m": mm, "row": "per game", "draws": draws * games,
                     **V.summarise(per_game), **old})
        if aggregate_draws:
            aggs = V.simulate_aggregate_rates(scores, n, mm, draws=aggregate_draws, reps=reps,
                                              seed=seed, settings=settings, per_run=per_run)
            rows += [{"n": n, "m": mm, "row": AGGREGATE_LABELS[r.pop("metric")],
                      "draws": aggregate_draws, **r} for r in aggs.to_dict("records")]
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    def pct(x):
        return "" if pd.isna(x) else f"{100 * x:.1f}%"

    head = ["n", "m", "Row", "Draws", "False below", "False above", "Inconclusive",
            "Reproduced", "Power 0.1", "Power 0.25", "Power 0.5"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * 2 + "---|" + "---:|" * 8]
    for r in table.to_dict("records"):
        lines.append("| " + " | ".join([
            str(r["n"]), str(r["m"]), r["row"], str(r["draws"]),
            *(pct(r[c]) for c in ["false_below", "false_above", "inconclusive", "reproduced",
                                  "power_0.1", "power_0.25", "power_0.5"])]) + " |")
    old = table[table["row"] == "per game"]
    lines += ["", "| n | Percentile-bootstrap CI covers the all-runs mean | t interval covers it "
              "| Old rule: perfect reproduction called reproduced |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['n']} | {pct(r['percentile_coverage'])} | {pct(r['t_coverage'])} | "
              f"{pct(r['old_rule_reproduced'])} |" for r in old.to_dict("records")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="SPR", help="published per-run file or name (SPR, "
                   "DrQ-eps, CURL_10_evals have 100 runs per game)")
    p.add_argument("--n", type=int, nargs="+", default=[3, 5, 10], help="our runs per game")
    p.add_argument("--m", type=int, default=None, help="published runs (default: n)")
    p.add_argument("--draws", type=int, default=400, help="draws per game and n")
    p.add_argument("--aggregate-draws", type=int, default=200, help="draws of the whole grid")
    p.add_argument("--reps", type=int, default=500, help="bootstrap reps per aggregate draw")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-run", action="store_true",
                   help="the published runs' own spread is known (Welch)")
    p.add_argument("--level", type=float, default=V.DEFAULTS.level)
    p.add_argument("--level-means-only", type=float, default=V.DEFAULTS.level_means_only)
    p.add_argument("--level-aggregates", type=float, default=V.DEFAULTS.level_aggregates)
    p.add_argument("--margin-hns", type=float, default=V.DEFAULTS.margin_hns)
    p.add_argument("--out", default=None, help="also write OUT.md and OUT.csv")
    args = p.parse_args(argv)
    if min(args.n) < 2 or args.draws < 1:
        p.error("--n must be >= 2 and --draws >= 1")
    settings = V.Settings(level=args.level, level_means_only=args.level_means_only,
                          level_aggregates=args.level_aggregates, margin_hns=args.margin_hns)
    t0 = time.perf_counter()
    table = measure(args.method, args.n, args.m, args.draws, args.aggregate_draws, args.reps,
                    args.seed, settings, args.per_run)
    took = time.perf_counter() - t0
    side = "published runs known (Welch)" if args.per_run else "published mean only"
    text = (f"Verdict rates from {args.method}'s per-run scores; {side}; levels "
            f"{settings.level_means_only if not args.per_run else settings.level:g} per game, "
            f"{settings.level_aggregates:g} aggregates; margin ±{settings.margin_hns:g} HNS; "
            f"seed {args.seed}.\n\n{markdown(table)}\n\n{took:.0f} s on {machine()}.")
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.md").write_text(text + "\n")
        table.to_csv(f"{args.out}.csv", index=False, float_format="%.4f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
