"""Time ``analysis.aggregates.aggregate``: 10 published methods x 26 games at 50,000 reps.

Target (issue 7): <= 30 s on the 2-core CPU machine. Methods: the shipped per-run data
(8 methods with 5 runs per game, SPR and CURL with 100), so the 100-run matrices make this
harder than 10 x 5 runs. Optionally also times rliable itself on one method for comparison.

    .venv/bin/python benchmarks/analysis_speed.py [--reps 50000] [--rliable-reps 2000]
"""

import argparse
import time

from analysis import aggregates as A
from analysis import scores as S

METHODS = ["DIAMOND", "IRIS", "STORM", "TWM", "REM", "DreamerV3-2023", "DeltaIRIS", "SimPLe",
           "SPR", "CURL_10_evals"]
# the same without the two 100-run methods: the usual 5 seeds (DreamerV3-2024: 1-5 after its
# frame-window rule, EfficientZero: 1 published mean)
METHODS_FEW_RUNS = [*METHODS[:8], "DreamerV3-2024-curves", "EfficientZero"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=50_000)
    p.add_argument("--rliable-reps", type=int, default=0,
                   help="also time rliable's own bootstrap on DIAMOND at this many reps")
    args = p.parse_args()
    for methods in (METHODS, METHODS_FEW_RUNS):
        df = S.human_normalise(S.load_all([S.published_path(m) for m in methods]))
        runs = df.groupby(["method", "game"]).size().groupby("method").max().to_dict()
        t, c = time.perf_counter(), time.process_time()
        agg = A.aggregate(df, reps=args.reps, seed=0)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        print(f"aggregate: {len(agg)} methods x 26 games (max runs/game {runs}), {args.reps} "
              f"reps: {dt:.1f} s wall, {dc:.1f} s CPU (target <= 30 s)")
    if args.rliable_reps:
        t = time.perf_counter()
        A.aggregate(df, methods=["DIAMOND"], reps=args.rliable_reps, backend="rliable")
        dr = time.perf_counter() - t
        t = time.perf_counter()
        A.aggregate(df, methods=["DIAMOND"], reps=args.rliable_reps)
        dn = time.perf_counter() - t
        print(f"one method x {args.rliable_reps} reps: rliable {dr:.2f} s, numpy {dn:.3f} s")


if __name__ == "__main__":
    main()
