"""Snakemake adapter: every run's eval.parquet + run_info.json -> scores.parquet, curves.parquet.

scores.parquet: one row per run with game, variant, seed, score (mean return of the final
evaluation episodes, via analysis.scores.score_from_eval_episodes), final_episodes, and the
run's provenance flattened from run_info.json (scalar fields, nested dicts as "a.b" columns).
curves.parquet: one row per (run, periodic evaluation): game, variant, seed, env_step, return
(mean over that evaluation's episodes), return_std, episodes. The final evaluation is the
run's score, not a curve point.
"""

import json
import sys
from pathlib import Path

import pandas as pd

from analysis.scores import score_from_eval_episodes

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake injects `snakemake`)


def flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


rows, curves = [], []
for path in map(Path, snakemake.input.evals):  # noqa: F821
    episodes = pd.read_parquet(path)
    (score,) = score_from_eval_episodes(path)["score"]
    info_path = path.parent / "run_info.json"
    if not info_path.exists():
        raise FileNotFoundError(f"{info_path}: missing beside a finished run's eval.parquet")
    first = episodes.iloc[0]
    info = flatten(json.loads(info_path.read_text()))
    row = {k: v for k, v in info.items() if k not in ("game", "variant", "seed")}
    row.update(
        game=first["game"],
        variant=first["variant"],
        seed=int(first["seed"]),
        score=float(score),
        final_episodes=int(episodes["final"].sum()),
        run_dir=str(path.parent),
    )
    rows.append(row)
    periodic = episodes[~episodes["final"].astype(bool)]
    keys = ["game", "variant", "seed", "env_step"]
    curve = periodic.groupby(keys)["return"].agg(["mean", "std", "count"]).reset_index()
    names = {"mean": "return", "std": "return_std", "count": "episodes"}
    curves.append(curve.rename(columns=names))

front = ["game", "variant", "seed", "score", "final_episodes"]
scores = pd.DataFrame(rows)
scores = scores[front + [c for c in scores.columns if c not in front]]
scores = scores.sort_values(["game", "variant", "seed"]).reset_index(drop=True)
scores.to_parquet(snakemake.output.scores, index=False)  # noqa: F821
pd.concat(curves, ignore_index=True).to_parquet(snakemake.output.curves, index=False)  # noqa: F821
print(f"collected {len(scores)} runs", file=sys.stderr)
