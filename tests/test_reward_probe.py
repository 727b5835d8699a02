"""benchmarks/reward_probe.py: the reward-target shift and one tiny run on real Boxing."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "benchmarks" / "reward_probe.py"


def _load():
    spec = importlib.util.spec_from_file_location("reward_probe", PROBE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_previous_rewards_shift_by_one_and_restart_at_episode_starts():
    r = np.array([1.0, 0.0, 2.0, 5.0, 3.0])
    first = np.array([True, False, False, True, False])
    np.testing.assert_array_equal(_load().previous_rewards(r, first), [0.0, 1.0, 0.0, 0.0, 5.0])


def test_probe_runs_on_a_real_game_and_prints_its_scores():
    for target in ("before", "after"):
        res = subprocess.run(
            [sys.executable, str(PROBE), "--game", "Boxing", "--preset", "debug", "--steps", "300",
             "--heldout", "64", "--updates", "3", "--every", "2", "--target", target],
            capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert res.returncode == 0, res.stderr[-2000:]
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("update")]
        assert [int(ln.split()[1]) for ln in lines] == [2, 3], res.stdout
        assert f"target {target}" in res.stdout
        assert all(re.search(r"rew \d+\.\d+ rec \d+\.\d+", ln) for ln in lines), lines
