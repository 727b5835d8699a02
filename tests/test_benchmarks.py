"""benchmarks/train_loop.py --profile: where a training step's CPU time goes, by op kind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOOP = ROOT / "benchmarks" / "train_loop.py"


@pytest.mark.slow
def test_train_loop_profile_splits_cpu_time_by_op_kind():
    res = subprocess.run([sys.executable, str(LOOP), "--preset", "debug", "--game", "Pong",
                          "--warm", "1", "--measure", "2", "--profile",
                          "--set", "replay.warmup=60"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    # the per-part timers cover the timed window only, not the profiled steps after it
    assert all(v >= 0 for v in out["ms_per_step"].values()), out["ms_per_step"]
    prof = out["profile"]
    assert prof["profiled_steps"] == 2
    kinds = prof["by_kind_ms"]
    assert set(kinds) == {"convolution", "batch_norm", "other"}
    assert kinds["convolution"] > 0 and kinds["batch_norm"] > 0 and kinds["other"] > 0
    assert sum(kinds.values()) == pytest.approx(prof["self_cpu_ms_per_step"], abs=0.2)
    assert sum(prof["by_kind_share"].values()) == pytest.approx(1.0, abs=0.01)
    assert len(prof["top_ops_ms"]) == 10
    assert any("conv" in name for name in prof["top_ops_ms"])


def test_train_loop_profile_refuses_a_baseline():
    res = subprocess.run([sys.executable, str(LOOP), "--profile", "--baseline", "HEAD"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--profile" in res.stderr
