"""The workflow's run outputs -> the two analysis tables.

``collect_runs(evals, infos)`` reads every run's ``eval.parquet`` (per-episode returns of the
periodic and final evaluations) and ``run_info.json`` (provenance) and returns:

- scores: one row per run with game, variant, seed, score (mean return of the final evaluation
  episodes, ``scores.score_from_eval_episodes``), final_episodes, run_dir, and the run's
  provenance flattened from run_info.json (scalars; nested dicts as "a.b" columns; lists as
  JSON strings);
- curves: one row per (run, periodic evaluation): game, variant, seed, env_step, return (mean
  over that evaluation's episodes), return_std, episodes. The final evaluation is the run's
  score, not a curve point. Runs without periodic evaluations give no rows (the columns stay).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis.scores import read_json, read_parquet, score_from_eval_episodes

CURVE_COLUMNS = ["game", "variant", "seed", "env_step", "return", "return_std", "episodes"]
FRONT = ["game", "variant", "seed", "score", "final_episodes"]


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested dict -> flat {"a.b": scalar}; lists and tuples become JSON strings."""
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


def read_run(path: Path, info_path: Path) -> tuple[pd.DataFrame, float, tuple, dict]:
    """(episodes, score, (game, variant, seed), run_info) of one finished run, or a ValueError
    that names the run directory and the file that is missing, unreadable or inconsistent."""
    path, info_path = Path(path), Path(info_path)
    try:
        episodes = read_parquet(path, "eval.parquet")
        (score,) = score_from_eval_episodes(path)["score"]
        if not info_path.exists():
            raise FileNotFoundError(f"{info_path}: missing beside a finished run's {path.name}")
        first = episodes.iloc[0]
        key = (str(first["game"]), str(first["variant"]), int(first["seed"]))
        raw = read_json(info_path, "run_info.json")
        if not isinstance(raw, dict):
            raise ValueError(f"{info_path}: expected a JSON object")
        if "game" in raw and (raw.get("game"), raw.get("variant"), raw.get("seed")) != key:
            raise ValueError(f"{info_path} describes run {raw.get('game')}/{raw.get('variant')}"
                             f"/seed{raw.get('seed')}, but {path} holds {key}")
    except (ValueError, OSError) as e:
        raise ValueError(f"run {path.parent}: {e}. Delete the damaged file and rerun: the "
                         f"trainer re-evaluates a finished run from its checkpoint") from None
    return episodes, float(score), key, raw


def check_runs(evals: Sequence[str | Path], infos: Sequence[str | Path] | None = None) -> int:
    """Check every *existing* finished run among ``evals`` (see :func:`read_run`) without
    writing anything; returns how many were checked. The workflow calls this while it plans
    ``collect``, so a damaged run stops Snakemake before it deletes the previous outputs."""
    evals = [Path(p) for p in evals]
    infos = [p.parent / "run_info.json" for p in evals] if infos is None else \
        [Path(p) for p in infos]
    n = 0
    for path, info_path in zip(evals, infos, strict=True):
        if path.exists():
            read_run(path, info_path)
            n += 1
    return n


def collect_runs(evals: Sequence[str | Path], infos: Sequence[str | Path] | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, curves) of the runs whose ``eval.parquet`` files are ``evals``.

    ``infos``: the matching ``run_info.json`` files (default: next to each eval.parquet).
    A missing run_info.json or a run_info that names another run is an error naming the file.
    """
    evals = [Path(p) for p in evals]
    infos = [p.parent / "run_info.json" for p in evals] if infos is None else \
        [Path(p) for p in infos]
    if not evals:
        raise ValueError("no runs to collect")
    if len(infos) != len(evals):
        raise ValueError(f"{len(evals)} eval.parquet files but {len(infos)} run_info.json")
    rows, curves = [], []
    for path, info_path in zip(evals, infos, strict=True):
        episodes, score, key, raw = read_run(path, info_path)
        info = flatten(raw)
        row = {k: v for k, v in info.items() if k not in ("game", "variant", "seed")}
        row.update(game=key[0], variant=key[1], seed=key[2], score=float(score),
                   final_episodes=int(episodes["final"].sum()), run_dir=str(path.parent))
        rows.append(row)
        periodic = episodes[~episodes["final"].astype(bool)]
        if not periodic.empty:
            curve = periodic.groupby(["game", "variant", "seed", "env_step"])["return"] \
                .agg(["mean", "std", "count"]).reset_index()
            curves.append(curve.rename(columns={"mean": "return", "std": "return_std",
                                                "count": "episodes"}))
    scores = pd.DataFrame(rows)
    scores = scores[FRONT + [c for c in scores.columns if c not in FRONT]]
    scores = scores.sort_values(["game", "variant", "seed"]).reset_index(drop=True)
    curve = pd.concat(curves, ignore_index=True) if curves else \
        pd.DataFrame({c: pd.Series(dtype="float64" if c in ("return", "return_std") else
                                   "object" if c in ("game", "variant") else "int64")
                      for c in CURVE_COLUMNS})
    return scores, curve[CURVE_COLUMNS]


def write_collected(evals: Sequence[str | Path], out_scores: str | Path, out_curves: str | Path,
                    infos: Sequence[str | Path] | None = None) -> int:
    """Collect the runs and write scores.parquet and curves.parquet; return the run count."""
    scores, curves = collect_runs(evals, infos)
    for path in (out_scores, out_curves):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    scores.to_parquet(out_scores, index=False)
    curves.to_parquet(out_curves, index=False)
    return len(scores)
