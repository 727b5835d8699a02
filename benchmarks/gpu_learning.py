"""Does it learn? Several games trained at once on one GPU for the time given, each compared with
the random policy and with DreamerV3's published curves at the same agent step.

    python benchmarks/gpu_learning.py --device cuda --preset atari100k --budget 240 \
        --run-dir /tmp/gpu_check_run --json learning.json --csv learning_curves.csv \
        [--concurrency concurrency.json] [--loop loop_compiled.json ...] [--compile on] \
        [--games Boxing Krull ...] [--runs N] [--steps N]

Runs: ``--runs`` if given, else the ``runs_per_gpu`` that ``benchmarks/gpu_concurrency.py``
recommended (``--concurrency``), else 1; the first that many ``--games`` (default Boxing, Krull,
Assault, Gopher, CrazyClimber, KungFuMaster, UpNDown, Pong), each a plain
``python -m drama.train --game G --seed 0 --variant drama --preset P`` started through
``scripts/gpu_pin.sh`` as the workflow starts its jobs (all on the first visible GPU).
Steps (unless ``--steps``): the preset's random warm-up plus what the measured per-run speed
at that many concurrent runs (the concurrency measurement, else the train-loop benchmark's)
allows in ``--budget`` after the measured start-up (process start, warm-up fill, compilation:
the concurrency workers' ``prepare_s``) and the time of the evaluations (``--eval-allowance``
seconds, or more when the train-loop benchmark's acting + env time per step says 4 evaluations
of 2,000-step episodes, slowed as the concurrent runs slow each other, take longer), at 85% of
that speed. An evaluation every quarter of the steps (``--eval-episodes`` episodes)
and the final one (``--final-eval-episodes``). Runs still going at the deadline are stopped
(SIGTERM: they checkpoint and exit) and reported with the evaluations they logged.

Meanwhile the random policy is measured under the same protocol (``python -m
drama.random_policy``, ``--random-episodes`` episodes per game, at low CPU priority); a game
whose measurement does not finish in time is compared with the published random score instead
(the summary says which).

Per game (``--json``; ``--csv`` holds the curves in one long table): the curve (mean, std and
episode count of the returns at each evaluation, from the run's ``eval.parquet``, or its
``metrics.jsonl`` when stopped early), the human-normalised score at each evaluation
(``(score - random) / (human - random)`` with the published random/human table,
``analysis/data/atari100k_random_human.csv``), DreamerV3's published mean over its seeds at the
same agent step (``analysis/data/published/DreamerV3-2024-curves.json.gz``: each seed's
training-episode returns against env frames, 4 frames per agent step, linearly interpolated at
4 x step; before a seed's first episode its first return is used and the entry says so), and
the final evaluation against the random policy: gap, z = gap / SE(gap) and the verdict of
``analysis/learning.py`` (z >= 3 above random, z <= -3 below, else not separable).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from analysis.scores import (HUMAN_SCORES, RANDOM_HUMAN_CSV, RANDOM_SCORES,  # noqa: E402
                             canonical_game, published_path)
from gpu_concurrency import DEFAULT_GAMES  # noqa: E402
from gpu_procs import pinned, stop_run, threads_for  # noqa: E402

FRAMES_PER_STEP = 4
Z_BAR = 3.0  # analysis/learning.py's bar
SPEED_MARGIN = 0.85
EVAL_EPISODE_STEPS = 2000  # sizing guess: about a Boxing episode (2 min of play)
CURVE_COLUMNS = ["game", "env_step", "final", "episodes", "return_mean", "return_std",
                 "return_se", "hns", "dreamerv3_mean", "dreamerv3_hns", "dreamerv3_seeds",
                 "dreamerv3_note", "random_mean", "random_source"]


# -- published references -------------------------------------------------------------------
def dreamerv3_curves() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """{game: [(frames, returns) per seed]} from DreamerV3-2024's published curves."""
    with gzip.open(published_path("DreamerV3-2024-curves"), "rt") as f:
        recs = json.load(f)
    out: dict[str, list] = {}
    for r in recs:
        out.setdefault(canonical_game(r["task"]), []).append(
            (np.asarray(r["xs"], float), np.asarray(r["ys"], float)))
    return out


def dreamerv3_at(seeds: list[tuple[np.ndarray, np.ndarray]], step: int) -> dict:
    """DreamerV3's mean over its seeds at agent step ``step`` (frame 4 x step)."""
    frame = FRAMES_PER_STEP * step
    vals = [float(np.interp(frame, xs, ys)) for xs, ys in seeds]
    first = min(float(xs[0]) for xs, _ in seeds)
    early = sum(frame < xs[0] for xs, _ in seeds)
    note = (f"frame {frame} is before the first episode of {early} of {len(seeds)} seeds "
            f"(earliest at {first:.0f}): their first return used") if early else ""
    return {"mean": float(np.mean(vals)), "seeds": len(vals), "frame": frame, "note": note}


def hns(score: float, game: str) -> float:
    lo, hi = RANDOM_SCORES[game], HUMAN_SCORES[game]
    return (score - lo) / (hi - lo)


# -- sizing ---------------------------------------------------------------------------------
def _load(path: str | None) -> dict | None:
    if not path:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def plan(args, warmup: int) -> dict:
    """How many runs, and how many steps each, from the measurements at hand."""
    conc = _load(args.concurrency)
    loops = [x for x in (_load(p) for p in args.loop) if x and "env_steps_per_s" in x]
    rec = (conc or {}).get("recommendation", {})
    if args.runs:
        runs, runs_src = args.runs, "forced (--runs)"
    elif rec.get("runs_per_gpu"):
        runs, runs_src = rec["runs_per_gpu"], "measured runs_per_gpu (concurrency part)"
    else:
        runs, runs_src = 1, "1: no runs_per_gpu measured"
    runs = min(runs, len(args.games))
    level = next((lv for lv in (conc or {}).get("levels", [])
                  if lv["runs"] == runs and lv.get("status") == "measured"), None)
    if level:
        rate = level["mean_per_run_env_steps_per_s"]
        rate_src = f"concurrency part, {runs} concurrent runs (mean per run)"
    elif loops:
        rate = loops[0]["env_steps_per_s"] / runs
        rate_src = f"train-loop benchmark (one run) / {runs} runs"
    else:
        rate, rate_src = None, "none measured"
    workers = [w for w in (conc or {}).get("workers", [])[:runs] if "prepare_s" in w]
    if workers:
        startup = max(w["prepare_s"] for w in workers)
        startup_src = "concurrency workers' prepare_s (start, warm-up fill, warm steps)"
    elif loops:
        startup = 20 + loops[0]["warmup_fill_s"] + loops[0]["warm_s"]
        startup_src = "20 s + the train-loop benchmark's warm-up fill and warm steps"
    else:
        startup, startup_src = 60.0, "60 s (nothing measured)"
    # the evaluations: 4 (3 periodic + the final one), each about one episode of
    # EVAL_EPISODE_STEPS steps for its batch of environments, at the measured acting + env time
    # per step, slowed as the concurrent runs slow training down
    eval_s, eval_src = args.eval_allowance, "--eval-allowance"
    if loops and rate:
        ms = loops[0]["ms_per_step"]
        slowdown = max(1.0, loops[0]["env_steps_per_s"] / rate)
        est = 4 * EVAL_EPISODE_STEPS * (ms["acting"] + ms["env"]) / 1e3 * slowdown
        if est > eval_s:
            eval_s = est
            eval_src = (f"4 evaluations x {EVAL_EPISODE_STEPS} steps x (acting + env "
                        f"{ms['acting'] + ms['env']:.1f} ms) x slowdown {slowdown:.2f}")
    train_s = max(0.0, args.budget - startup - eval_s - args.stop_grace)
    if args.steps:
        steps, steps_src = args.steps, "forced (--steps)"
    else:
        extra = int(train_s * rate * SPEED_MARGIN) if rate else 0
        steps = max(warmup + 100, min(100_000, warmup + extra))
        steps_src = (f"warm-up {warmup} + {train_s:.0f} s x {rate or 0:.3g} env steps/s x "
                     f"{SPEED_MARGIN} (min warm-up + 100)")
    return {"runs": runs, "runs_source": runs_src, "per_run_env_steps_per_s": rate,
            "rate_source": rate_src, "startup_s": round(startup, 1),
            "startup_source": startup_src, "eval_allowance_s": round(eval_s, 1),
            "eval_allowance_source": eval_src,
            "steps": steps, "steps_source": steps_src, "eval_every": math.ceil(steps / 4),
            "games": list(args.games[:runs])}


# -- running --------------------------------------------------------------------------------
def run_all(args, pl: dict, deadline: float) -> dict[str, dict]:
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    work = run_dir / "_work"
    work.mkdir(exist_ok=True)
    cores = os.cpu_count() or 1
    threads = threads_for(pl["runs"], cores, args.max_threads)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads),
           "TORCHINDUCTOR_COMPILE_THREADS": str(max(1, cores // pl["runs"]))}
    if args.device.startswith("cuda"):
        env["CUDA_VISIBLE_DEVICES"] = (os.environ.get("CUDA_VISIBLE_DEVICES", "0")
                                       .split(",")[0] or "0")
    steps, every = pl["steps"], pl["eval_every"]
    sets = [f"train.compile={args.compile}", f"train.eval_every={every}",
            f"train.eval_episodes={args.eval_episodes}",
            f"train.eval_batch={max(args.eval_episodes, args.final_eval_episodes)}",
            f"train.final_eval_episodes={args.final_eval_episodes}",
            f"train.log_every={max(1, min(250, steps // 8))}",
            f"train.checkpoint_every={steps}", *args.set]
    procs: dict[str, subprocess.Popen] = {}
    randoms: dict[str, subprocess.Popen] = {}
    info: dict[str, dict] = {}
    for g in pl["games"]:
        out = run_dir / g
        if out.exists():  # a fresh run each time
            subprocess.run(["rm", "-rf", str(out)], check=True)
        cmd = [sys.executable, "-m", "drama.train", "--game", g, "--seed", "0", "--variant",
               "drama", "--preset", args.preset, "--device", args.device, "--steps",
               str(steps), "--out", str(out), *[a for s in sets for a in ("--set", s)]]
        info[g] = {"command": " ".join(cmd[1:]), "log": str(run_dir / f"{g}.log"),
                   "torch_threads_env": threads}
        full, info[g]["pinning"] = pinned(cmd, pl["runs"], work / "gpu_slots")
        with open(run_dir / f"{g}.log", "w") as log:
            procs[g] = subprocess.Popen(full, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        cwd=ROOT, start_new_session=True)
    if args.random_episodes > 0:
        for g in pl["games"]:
            target = work / f"random_{g}.parquet"
            target.unlink(missing_ok=True)
            with open(work / f"random_{g}.log", "w") as log:
                randoms[g] = subprocess.Popen(
                    ["nice", "-n", "19", sys.executable, "-m", "drama.random_policy", "--game",
                     g, "--episodes", str(args.random_episodes), "--out", str(target),
                     "--preset", args.preset], stdout=log, stderr=subprocess.STDOUT,
                    env={**env, "OMP_NUM_THREADS": "1"}, cwd=ROOT, start_new_session=True)
    stop_at = deadline - args.stop_grace
    try:
        while time.time() < stop_at and any(p.poll() is None for p in procs.values()):
            time.sleep(0.5)
    except BaseException:  # SIGTERM (the check's timeout), Ctrl-C: leave nothing running
        for p in [*procs.values(), *randoms.values()]:
            if p.poll() is None:
                stop_run(p, grace=3.0)
        raise
    for g, p in procs.items():
        if p.poll() is None:
            info[g]["stopped_at_deadline"] = True
            info[g]["stop"] = stop_run(p, grace=max(2.0, min(args.stop_grace - 2,
                                                              deadline - time.time())))
        info[g]["exit_code"] = p.returncode
    for g, p in randoms.items():  # whatever finished by now counts
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        info[g]["random_exit_code"] = p.returncode
        info[g]["random_parquet"] = str(work / f"random_{g}.parquet")
    return info


# -- summarising ----------------------------------------------------------------------------
def _metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass  # a line cut by the stop
    return rows


def run_curve(out: Path) -> tuple[pd.DataFrame, str]:
    """The run's evaluations: (env_step, final, episodes, return_mean, return_std, return_se)
    from eval.parquet, else from metrics.jsonl's eval rows."""
    cols = ["env_step", "final", "episodes", "return_mean", "return_std", "return_se"]
    if (out / "eval.parquet").exists():
        ev = pd.read_parquet(out / "eval.parquet")
        g = ev.groupby(["env_step", "final"], as_index=False)["return"]
        c = g.agg(episodes="count", return_mean="mean", return_std="std")
        c["return_se"] = c["return_std"] / np.sqrt(c["episodes"])
        return c[cols].sort_values(["env_step", "final"]), "eval.parquet"
    rows = []
    for m in _metrics(out / "metrics.jsonl"):
        for prefix, final in (("eval", False), ("eval_final", True)):
            if f"{prefix}/return_mean" in m:
                rows.append({"env_step": m["step"], "final": final, "episodes": None,
                             "return_mean": m[f"{prefix}/return_mean"],
                             "return_std": m.get(f"{prefix}/return_std"), "return_se": None})
    return pd.DataFrame(rows, columns=cols), "metrics.jsonl (run stopped before its end)"


def random_reference(game: str, parquet: str | None) -> dict:
    if parquet and Path(parquet).exists():
        r = pd.read_parquet(parquet)["return"]
        se = float(r.std(ddof=1) / np.sqrt(len(r))) if len(r) > 1 else None
        return {"mean": float(r.mean()), "se": se, "episodes": int(len(r)),
                "source": f"measured: drama.random_policy, {len(r)} episodes, this protocol"}
    return {"mean": RANDOM_SCORES[game], "se": None, "episodes": None,
            "source": f"published ({RANDOM_HUMAN_CSV.name}; another protocol): the measured "
                      "random policy did not finish in time"}


def against_random(row: dict, rnd: dict) -> dict:
    gap = row["return_mean"] - rnd["mean"]
    have = {who: s for who, s in (("agent", row.get("return_se")), ("random", rnd.get("se")))
            if s is not None and s == s}
    se = math.sqrt(sum(s * s for s in have.values())) if have else None
    z = gap / se if se else None
    if z is None:
        verdict = "n/a (no standard error)"
    else:
        verdict = ("above random" if z >= Z_BAR else "below random" if z <= -Z_BAR
                   else "not separable")
    return {"env_step": int(row["env_step"]), "final": bool(row["final"]),
            "gap": round(gap, 3), "z": None if z is None else round(z, 2), "verdict": verdict,
            "above_random_mean": bool(gap > 0),
            "se_from": " and ".join(have) or "none"}


def summarise_game(game: str, out: Path, meta: dict, dv3: dict) -> tuple[dict, pd.DataFrame]:
    cg = canonical_game(game)
    curve, source = run_curve(out)
    rnd = random_reference(cg, meta.get("random_parquet"))
    recs = []
    for row in curve.to_dict("records"):
        ref = dreamerv3_at(dv3[cg], int(row["env_step"])) if cg in dv3 else None
        recs.append({"game": game, **row, "hns": hns(row["return_mean"], cg),
                     "dreamerv3_mean": ref["mean"] if ref else None,
                     "dreamerv3_hns": hns(ref["mean"], cg) if ref else None,
                     "dreamerv3_seeds": ref["seeds"] if ref else 0,
                     "dreamerv3_note": ref["note"] if ref else "no published curve",
                     "random_mean": rnd["mean"], "random_source": rnd["source"]})
    frame = pd.DataFrame(recs, columns=CURVE_COLUMNS)
    run_info = {}
    if (out / "run_info.json").exists():
        try:
            run_info = json.loads((out / "run_info.json").read_text())
        except ValueError:
            pass
    metrics = _metrics(out / "metrics.jsonl")
    sps = [m["perf/env_steps_per_s"] for m in metrics if "perf/env_steps_per_s" in m]
    last_step = max((m["step"] for m in metrics), default=0)
    status = run_info.get("status", "not started")
    if meta.get("stopped_at_deadline"):
        status = f"stopped at the time limit ({status})"
    elif meta.get("exit_code") not in (0, None):
        status = f"failed (exit {meta['exit_code']}; log {meta.get('log')})"
    log = Path(meta["log"]) if meta.get("log") else None
    interrupted = (re.findall(r"interrupted at step (\d+)", log.read_text(errors="replace"))
                   if log and log.exists() else [])
    last = recs[-1] if recs else None
    entry = {"game": game, "status": status, "run_dir": str(out), "command": meta.get("command"),
             "pinning": meta.get("pinning"), "torch_threads_env": meta.get("torch_threads_env"),
             "stop": meta.get("stop"), "exit_code": meta.get("exit_code"),
             "env_steps": run_info.get("env_steps", last_step) if status == "complete"
             else int(interrupted[-1]) if interrupted else last_step,
             "env_steps_from": "run_info.json" if status == "complete"
             else "the run's log (interrupted at that step)" if interrupted
             else "metrics.jsonl (last logged step)", "steps_target": run_info.get("steps_target"),
             "wall_time_s": run_info.get("wall_time_s"), "score": run_info.get("score"),
             "env_steps_per_s_logged": [round(x, 3) for x in sps[-4:]],
             "curve_source": source, "random": rnd, "human": HUMAN_SCORES[cg],
             "curve": [{k: v for k, v in r.items() if k not in ("game", "random_mean",
                                                                 "random_source")}
                       for r in recs],
             "last_evaluation_vs_random": against_random(last, rnd) if last else None}
    return entry, frame


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--preset", default="atari100k")
    p.add_argument("--budget", type=float, required=True, help="seconds for the whole part")
    p.add_argument("--run-dir", required=True, help="runs go to RUN_DIR/GAME (replaced)")
    p.add_argument("--json", required=True)
    p.add_argument("--csv", default=None)
    p.add_argument("--games", nargs="+", default=list(DEFAULT_GAMES))
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--concurrency", default=None, help="gpu_concurrency.py's JSON")
    p.add_argument("--loop", action="append", default=[],
                   help="train_loop.py JSON (repeatable; the first readable one is used)")
    p.add_argument("--compile", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--eval-episodes", type=int, default=3)
    p.add_argument("--final-eval-episodes", type=int, default=5)
    p.add_argument("--eval-allowance", type=float, default=60.0,
                   help="seconds set aside for the evaluations when sizing the steps")
    p.add_argument("--stop-grace", type=float, default=20.0,
                   help="runs still going this long before the deadline are stopped")
    p.add_argument("--random-episodes", type=int, default=10)
    p.add_argument("--max-threads", type=int, default=4)
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    t0 = time.time()
    deadline = t0 + args.budget
    try:
        for g in args.games:
            canonical_game(g)
        from drama.config import resolve_config

        warmup = resolve_config(args.games[0], 0, "drama", args.preset, args.set,
                                device="cpu").replay.warmup
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    pl = plan(args, warmup)
    print(f"learning: {pl['runs']} run(s) ({pl['runs_source']}), {pl['steps']} steps each "
          f"({pl['steps_source']}), evaluation every {pl['eval_every']}: {pl['games']}",
          file=sys.stderr, flush=True)
    meta = run_all(args, pl, deadline)
    dv3 = dreamerv3_curves()
    games, frames = [], []
    for g in pl["games"]:
        entry, frame = summarise_game(g, Path(args.run_dir) / g, meta[g], dv3)
        games.append(entry)
        frames.append(frame)
    above = [e["game"] for e in games if e["last_evaluation_vs_random"]
             and e["last_evaluation_vs_random"]["verdict"] == "above random"]
    result = {"plan": pl, "device": args.device, "preset": args.preset, "seed": 0,
              "compile": args.compile, "games": games, "games_above_random": above,
              "dreamerv3_reference": "DreamerV3-2024-curves.json.gz: training-episode returns, "
                                     "mean over seeds, interpolated at 4 frames per agent step",
              "seconds": round(time.time() - t0, 1)}
    Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    if args.csv:
        pd.concat(frames, ignore_index=True).to_csv(args.csv, index=False)
    for e in games:
        v = e["last_evaluation_vs_random"]
        print(f"{e['game']}: {e['status']}, {e['env_steps']} steps, last evaluation "
              f"{'-' if not e['curve'] else round(e['curve'][-1]['return_mean'], 2)} "
              f"(random {e['random']['mean']:.3g}: {v['verdict'] if v else 'no evaluation'})",
              file=sys.stderr)
    return 0 if all(e["status"] == "complete" for e in games) else 1


if __name__ == "__main__":
    sys.exit(main())
