"""benchmarks/gpu_check.sh end to end on the CPU (debug preset, tiny budgets), and the rule that
turns the concurrency measurement into a recommended runs_per_gpu.

Every part runs for real under its own time budget; on this CPU the compiled train-loop part is
given too little time on purpose, so the rehearsal also checks that a part that runs out of time
is recorded as such and the others still run (the training parts fall back to eager then). The
concurrency part runs 1 and 2 training processes at once, each started through
scripts/gpu_pin.sh (CUDA_VISIBLE_DEVICES=0 makes it take its lock slots; a CPU run ignores the
variable), and the learning part trains 2 games at once; the summary's numbers are checked
against the workers' and runs' own files and the published tables, not against constants.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_concurrency  # noqa: E402
import gpu_learning  # noqa: E402
import gpu_procs  # noqa: E402

GAMES = ["Breakout", "Pong"]  # short episodes: the evaluations stay cheap on the CPU
STEPS = 205  # the debug preset's 200 warm-up steps and 5 training steps


def test_recommendation_rule():
    """Highest total among the levels whose mean per-run speed is >= half the single run's."""
    def lv(n, per_run):
        return {"runs": n, "status": "measured", "mean_per_run_env_steps_per_s": per_run,
                "total_env_steps_per_s": n * per_run}

    # 8 runs give the most in total but each at 0.45 of one run: 4 is recommended
    rec = gpu_concurrency.recommend([lv(1, 100.0), lv(2, 90.0), lv(4, 60.0), lv(8, 45.0)])
    assert rec["runs_per_gpu"] == 4 and rec["levels_meeting_rule"] == [1, 2, 4]
    # exactly half counts; a failed level is ignored
    rec = gpu_concurrency.recommend([lv(1, 10.0), lv(2, 5.0), {"runs": 4, "status": "failed"}])
    assert rec["runs_per_gpu"] == 1  # equal totals: the fewer runs
    rec = gpu_concurrency.recommend([lv(1, 10.0), lv(2, 6.0)])
    assert rec["runs_per_gpu"] == 2
    assert gpu_concurrency.recommend([lv(2, 6.0)])["runs_per_gpu"] is None


def test_nvidia_smi_compute_apps_parsing():
    text = "12345, 2210\n678, [N/A]\nNo running processes found\n\n 91011 , 1534.5\n"
    assert gpu_procs.parse_compute_apps(text) == {12345: 2210.0, 91011: 1534.5}


def test_host_sync_counts_reach_the_summary():
    """The CUDA sync counter's record (filled by hand: set_sync_debug_mode needs CUDA) ends up
    per update in summary.json's answers and, with the source lines, in summary.md."""
    import gpu_summary
    import train_loop

    c = train_loop.SyncCounter()
    c.calls.update(wm_update=3, ac_update=3, imagination=3, acting=3)
    c.syncs.update(ac_update=6, acting=3)
    c.where["ac_update"]["drama/agent.py:120"] = 6
    loop = {"preset": "atari100k", "env_steps_per_s": 50.0, "warm_s": 40.0,
            "ms_per_step": dict.fromkeys(["wm_update", "imagination", "ac_update", "acting",
                                          "env", "other"], 1.0),
            "host_syncs": {**c.result(), "counted_steps": 3}}
    parts = {"loop_eager": {"status": "ok", "seconds": 30, "budget_s": 60, "result": loop}}
    summary = {"total_s": 30, "budget_s": 530, "machine": None, "parts": parts,
               "answers": gpu_summary.answers(parts)}
    assert summary["answers"]["host_syncs"]["eager"] == {"per_world_model_update": 0.0,
                                                         "per_actor_critic_update": 2.0}
    md = gpu_summary.markdown(summary)
    assert "eager 0.00 / 2.00" in md and "ac_update 2.0 per call (drama/agent.py:120 x6)" in md


def _worker_windows(work: Path) -> dict[tuple[int, int], dict]:
    out = {}
    for f in sorted((work / "concurrency").glob("worker*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            if r.get("event") == "window":
                out[(r["phase"], r["worker"])] = r
    return out


def _dreamerv3_mean(game: str, step: int) -> float:
    with gzip.open(ROOT / "analysis/data/published/DreamerV3-2024-curves.json.gz", "rt") as f:
        recs = json.load(f)
    key = {"Breakout": "atari_breakout", "Pong": "atari_pong"}[game]
    return float(np.mean([np.interp(4 * step, r["xs"], r["ys"]) for r in recs
                          if r["task"] == key]))


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_on_cpu(tmp_path):
    out, work, runs = tmp_path / "out", tmp_path / "work", tmp_path / "runs"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_DEVICE": "cpu",
           "GPU_CHECK_PRESET": "debug", "GPU_CHECK_GAMES": " ".join(GAMES),
           "GPU_CHECK_TOTAL": "330", "GPU_CHECK_T_PYTEST": "90", "GPU_CHECK_T_SEQ": "60",
           "GPU_CHECK_SEQ_LENGTHS": "16", "GPU_CHECK_T_EAGER": "90", "GPU_CHECK_T_COMPILED": "5",
           "GPU_CHECK_LOOP_MEASURE": "2", "GPU_CHECK_LEVELS": "1 2", "GPU_CHECK_T_CONC": "120",
           "GPU_CHECK_CONC_SETTLE": "2", "GPU_CHECK_CONC_WINDOW": "5",
           "GPU_CHECK_LEARN_RUNS": "2", "GPU_CHECK_RUN_STEPS": str(STEPS),
           "GPU_CHECK_EVAL_EPISODES": "2", "GPU_CHECK_FINAL_EVAL_EPISODES": "3",
           "GPU_CHECK_RANDOM_EPISODES": "3", "GPU_CHECK_RUN_DIR": str(runs),
           "GPU_CHECK_WORK": str(work), "CUDA_VISIBLE_DEVICES": "0"}
    env.pop("PYTHONPATH", None)  # the script puts the repository on the path itself
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(out)],
                         env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    log = (out / "log.txt").read_text()
    summary = json.loads((out / "summary.json").read_text())
    parts = summary["parts"]
    assert list(parts) == ["wheels", "pytest_gpu", "sequence", "loop_eager", "loop_compiled",
                           "concurrency", "learning"], log[-3000:]
    assert parts["wheels"]["status"] in ("skipped", "ok")
    assert parts["pytest_gpu"]["status"] == "ok"
    assert parts["loop_eager"]["status"] == "ok", log[-3000:]
    eager = parts["loop_eager"]["result"]
    assert eager["compile"]["enabled"] is False and eager["env_steps_per_s"] > 0
    assert set(eager["ms_per_step"]) >= {"wm_update", "imagination", "ac_update", "acting",
                                         "env"}
    assert eager["host_syncs"]["applicable"] is False  # counted on CUDA only
    assert summary["answers"]["host_syncs"]["eager"].startswith("not applicable")
    assert parts["loop_compiled"]["status"] == "timeout"  # 5 s cannot compile on this CPU

    # runs per GPU: 1 and 2 concurrent runs, the numbers are the workers' own
    assert parts["concurrency"]["status"] == "ok", log[-3000:]
    conc = parts["concurrency"]["result"]
    assert conc["sets"] == ["train.compile=off"]  # the compiled loop timed out
    workers = conc["workers"]
    assert [w["game"] for w in workers] == GAMES and all("pid" in w for w in workers)
    assert sorted(w["gpu_pin_slot"] for w in workers) == ["0", "1"]  # gpu_pin.sh's slots
    assert all(w["visible_gpu"] == "0" for w in workers)
    assert [lv["runs"] for lv in conc["levels"]] == [1, 2]
    windows = _worker_windows(work)
    for phase, lv in enumerate(conc["levels"], start=1):
        assert lv["status"] == "measured", lv
        det = lv["runs_detail"]
        assert [r["game"] for r in det] == GAMES[:lv["runs"]]
        rates = []
        for r in det:
            own = windows[(phase, r["worker"])]
            assert r["env_steps_per_s"] == own["env_steps_per_s"] > 0
            assert r["steps_in_window"] == own["steps_in_window"] >= 2
            rates.append(own["env_steps_per_s"])
        assert math.isclose(lv["total_env_steps_per_s"], sum(rates), abs_tol=2e-3)
        assert math.isclose(lv["mean_per_run_env_steps_per_s"], sum(rates) / len(rates),
                            abs_tol=2e-3)
    assert conc["recommendation"] == gpu_concurrency.recommend(conc["levels"])
    assert summary["answers"]["runs_per_gpu"] == conc["recommendation"]["runs_per_gpu"]

    # learning: 2 games at once, each with its curve and the published comparison
    assert parts["learning"]["status"] == "ok", log[-3000:]
    learn = parts["learning"]["result"]
    assert learn["plan"]["runs"] == 2 and learn["plan"]["steps"] == STEPS
    assert [g["game"] for g in learn["games"]] == GAMES
    table = pd.read_csv(ROOT / "analysis/data/atari100k_random_human.csv").set_index("game")
    curves_csv = pd.read_csv(out / "learning_curves.csv")
    every = learn["plan"]["eval_every"]
    for g in learn["games"]:
        game, run = g["game"], runs / g["game"]
        info = json.loads((run / "run_info.json").read_text())
        assert g["status"] == info["status"] == "complete", g
        assert g["env_steps"] == info["env_steps"] == STEPS
        ev = pd.read_parquet(run / "eval.parquet")
        own = ev.groupby(["env_step", "final"])["return"].agg(["mean", "count"]).reset_index()
        assert [c["env_step"] for c in g["curve"]] == [every, 2 * every, 3 * every, STEPS]
        assert [c["env_step"] for c in g["curve"]] == own["env_step"].tolist()
        assert [c["final"] for c in g["curve"]] == [False, False, False, True]
        lo, hi = table.loc[game, "random"], table.loc[game, "human"]
        for c, (_, o) in zip(g["curve"], own.iterrows(), strict=True):
            assert math.isclose(c["return_mean"], o["mean"]) and c["episodes"] == o["count"]
            assert math.isclose(c["hns"], (o["mean"] - lo) / (hi - lo))
            assert math.isclose(c["dreamerv3_mean"], _dreamerv3_mean(game, c["env_step"]))
            assert math.isclose(c["dreamerv3_hns"], (c["dreamerv3_mean"] - lo) / (hi - lo))
            assert c["dreamerv3_seeds"] == 5
        rnd = g["random"]
        parquet = runs / "_work" / f"random_{game}.parquet"
        if rnd["source"].startswith("measured"):
            r = pd.read_parquet(parquet)["return"]
            assert math.isclose(rnd["mean"], r.mean()) and rnd["episodes"] == len(r) == 3
        else:  # did not finish in time: the published random score, and it says so
            assert rnd["mean"] == lo and "published" in rnd["source"]
        vs = g["last_evaluation_vs_random"]
        assert vs["final"] and math.isclose(vs["gap"], g["curve"][-1]["return_mean"]
                                            - rnd["mean"], abs_tol=1e-3)
        rows = curves_csv[curves_csv["game"] == game]
        assert rows["return_mean"].tolist() == pytest.approx(
            [c["return_mean"] for c in g["curve"]])
    assert len(curves_csv) == sum(len(g["curve"]) for g in learn["games"])

    # the measured path of the sizing: without --runs the plan takes the recommendation and
    # that level's measured per-run speed
    args = Namespace(concurrency=str(work / "concurrency.json"), loop=[], runs=None,
                     games=GAMES, budget=300.0, eval_allowance=60.0, stop_grace=20.0,
                     steps=None)
    pl = gpu_learning.plan(args, warmup=200)
    rec = conc["recommendation"]
    assert pl["runs"] == rec["runs_per_gpu"] and pl["games"] == GAMES[:pl["runs"]]
    level = next(lv for lv in conc["levels"] if lv["runs"] == pl["runs"])
    assert pl["per_run_env_steps_per_s"] == level["mean_per_run_env_steps_per_s"]
    assert pl["steps"] == max(300, 200 + int((300 - pl["startup_s"] - 80)
                                             * pl["per_run_env_steps_per_s"] * 0.85))
    # with the train-loop benchmark at hand, the evaluations' time is estimated from its acting
    # and env time per step when that exceeds the allowance
    args.loop, args.eval_allowance = [str(work / "loop_eager.json")], 1.0
    pl = gpu_learning.plan(args, warmup=200)
    ms = eager["ms_per_step"]
    slowdown = max(1.0, eager["env_steps_per_s"] / level["mean_per_run_env_steps_per_s"])
    est = 4 * gpu_learning.EVAL_EPISODE_STEPS * (ms["acting"] + ms["env"]) / 1e3 * slowdown
    assert pl["eval_allowance_s"] == pytest.approx(est, abs=0.06)
    assert pl["eval_allowance_source"].startswith("4 evaluations")

    md = (out / "summary.md").read_text()
    for text in ("## Parts", "## Speed", "## Runs per GPU", "## Learning", *GAMES,
                 f"Recommended runs_per_gpu: {rec['runs_per_gpu']}**"):
        assert text in md, text
    files = [p for p in out.iterdir()]
    assert all(p.is_file() for p in files) and len(files) <= 8, files
    assert {p.name for p in files} >= {"summary.json", "summary.md", "learning_curves.csv",
                                       "log.txt", "runs_log.txt"}


@pytest.mark.slow
def test_learning_stops_runs_at_the_deadline_and_reports_what_they_logged(tmp_path):
    """A run that cannot finish in the budget is stopped (SIGTERM: it checkpoints and exits
    143) and reported with the evaluations in its metrics.jsonl; without a measured random
    policy the comparison uses the published random score and says so."""
    runs, out = tmp_path / "runs", tmp_path / "learning.json"
    # 800 steps, an evaluation every 200: the first at the end of the 200 random warm-up steps
    # (seconds in), the next needs 200 training steps, more than the CPU does in 40 s, so the
    # stop comes between steps
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_learning.py"), "--device", "cpu",
         "--preset", "debug", "--budget", "40", "--stop-grace", "10", "--run-dir", str(runs),
         "--json", str(out), "--games", "Breakout", "--runs", "1", "--steps", "800",
         "--compile", "off", "--eval-episodes", "2", "--random-episodes", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr[-3000:]  # 1: not every run complete
    g = json.loads(out.read_text())["games"][0]
    assert g["status"].startswith("stopped at the time limit"), g["status"]
    metrics = [json.loads(line) for line in
               (runs / "Breakout" / "metrics.jsonl").read_text().splitlines()]
    stopped = re.findall(r"interrupted at step (\d+)", (runs / "Breakout.log").read_text())
    if stopped:  # SIGTERM at a step boundary: checkpoint, exit 143 through gpu_pin.sh
        assert g["stop"] == "exited after SIGTERM" and g["exit_code"] == 143
        assert (runs / "Breakout" / "checkpoint.pt").exists()
        assert g["env_steps"] == int(stopped[0])
    else:  # caught in an evaluation longer than the grace
        assert g["stop"].startswith("killed (SIGKILL)"), g["stop"]
        assert g["env_steps"] == max(m["step"] for m in metrics)
    assert 200 <= g["env_steps"] < 800
    evals = [(m["step"], m["eval/return_mean"]) for m in metrics if "eval/return_mean" in m]
    assert evals and evals[0][0] == 200
    assert [(c["env_step"], c["return_mean"]) for c in g["curve"]] == evals
    assert g["curve_source"].startswith("metrics.jsonl")
    rnd = g["random"]
    assert rnd["source"].startswith("published") and rnd["mean"] == pytest.approx(1.7)
    vs = g["last_evaluation_vs_random"]
    assert vs["env_step"] == evals[-1][0] and not vs["final"]
