"""benchmarks/gpu_check.sh end to end on the CPU (debug preset, tiny budgets).

Every part runs for real under its own time budget; on this CPU the compiled train-loop part is
given too little time on purpose, so the test also checks that a part that runs out of time is
recorded as such and the others still run (the run falls back to eager then).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_on_cpu(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_DEVICE": "cpu",
           "GPU_CHECK_PRESET": "debug", "GPU_CHECK_GAME": "Pong", "GPU_CHECK_TOTAL": "240",
           "GPU_CHECK_T_PYTEST": "90", "GPU_CHECK_T_SEQ": "60", "GPU_CHECK_SEQ_LENGTHS": "16",
           "GPU_CHECK_T_EAGER": "90", "GPU_CHECK_T_COMPILED": "5", "GPU_CHECK_LOOP_MEASURE": "2",
           "GPU_CHECK_RUN_STEPS": "205", "GPU_CHECK_RUN_DIR": str(tmp_path / "run")}
    env.pop("PYTHONPATH", None)  # the script puts the repository on the path itself
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(out)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    parts = summary["parts"]
    assert list(parts) == ["wheels", "pytest_gpu", "sequence", "loop_eager", "loop_compiled",
                           "run"]
    assert parts["wheels"]["status"] in ("skipped", "ok")
    assert parts["pytest_gpu"]["status"] == "ok"
    assert parts["loop_eager"]["status"] == "ok"
    eager = parts["loop_eager"]["result"]
    assert eager["compile"]["enabled"] is False and eager["env_steps_per_s"] > 0
    assert set(eager["ms_per_step"]) >= {"wm_update", "imagination", "ac_update", "acting",
                                         "env"}
    assert parts["loop_compiled"]["status"] == "timeout"  # 5 s cannot compile on this CPU
    run = parts["run"]
    assert run["compile"] == "off" and run["steps_target"] == 205
    assert run["status"] in ("ok", "timeout"), run
    if run["status"] == "ok":
        assert run["status_in_run"] == "complete" and (out / "run_info.json").exists()
        assert any(r["final"] for r in run["eval_curve"])
    assert (out / "eval_curve.csv").exists() and (out / "log.txt").exists()
    assert len([p for p in out.iterdir() if not p.name.startswith(".")]) <= 8
