"""Two grids in one checkout (the smoke grid, then the "paper" grid, then the smoke grid again):
each keeps its own run directories, so nothing complete is deleted, refused or retrained.

Tiny stand-ins for the two grids (one Pong run each, the debug preset, a few dozen steps): the
grids differ in the settings that decide the run directory (steps and trainer_overrides; the
real smoke and paper grids also differ in preset, which is part of the key the same way).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workflow_copy import copy_workflow, workflow_env

GRID = """games: [Pong]
seeds: [0]
variants: [drama]
preset: debug
steps: {steps}
device: cpu
trainer_overrides:
  replay.warmup: 20
  train.eval_every: 0
  train.final_eval_episodes: 1
"""


def snakemake(wd: Path, configfile: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "runs", "--cores", "2", "--workflow-profile",
           "profiles/cpu", "--configfile", configfile, *extra]
    return subprocess.run(cmd, cwd=wd, env=workflow_env(), capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_smoke_then_paper_then_smoke_loses_and_retrains_nothing(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    (wd / "smoke.yaml").write_text(GRID.format(steps=30))
    (wd / "paper.yaml").write_text(GRID.format(steps=40))
    first = snakemake(wd, "smoke.yaml")
    assert first.returncode == 0, first.stderr[-3000:]
    (smoke_eval,) = wd.glob("results/runs/*/Pong/drama/seed0/eval.parquet")
    before = smoke_eval.stat().st_mtime_ns

    second = snakemake(wd, "paper.yaml")
    assert second.returncode == 0, second.stderr[-3000:]
    evals = sorted(wd.glob("results/runs/*/Pong/drama/seed0/eval.parquet"))
    assert len(evals) == 2, evals  # a second directory; the smoke run is untouched
    assert smoke_eval.stat().st_mtime_ns == before
    (paper_eval,) = [p for p in evals if p != smoke_eval]
    paper_before = paper_eval.stat().st_mtime_ns

    for name in ("smoke.yaml", "paper.yaml"):  # either order: both grids are complete
        again = snakemake(wd, name, "-n")
        assert again.returncode == 0, again.stderr[-3000:]
        assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
    third = snakemake(wd, "smoke.yaml")
    assert third.returncode == 0 and "rule train" not in third.stdout + third.stderr
    assert smoke_eval.stat().st_mtime_ns == before
    assert paper_eval.stat().st_mtime_ns == paper_before
