"""The workflow's open-loop strips (config openloop_strips, workflow/rules/openloop.smk): one job
per game on the final checkpoint of the reproduced variant's first seed; none when switched
off."""

import re

from test_workflow import _job_counts, snakemake


def test_paper_grid_plans_one_strip_per_game_and_smoke_none():
    proc = snakemake("-n", "-p", "--forceall", "results/openloop/Pong.png")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"python -m drama\.openloop results/runs/atari100k/Pong/drama/seed0 "
                     r"--out results/openloop/Pong ", out), out[-3000:]
    proc = snakemake("-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _job_counts(proc.stdout + proc.stderr)["openloop"] == 26
    proc = snakemake("-n", "--quiet", "rules", "--configfile", "config/smoke.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "openloop" not in _job_counts(proc.stdout + proc.stderr)
    proc = snakemake("-n", "--quiet", "rules", "--configfile", "config/smoke.yaml", "--config",
                     "openloop_strips=True", "variants=[uniform]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _job_counts(proc.stdout + proc.stderr)["openloop"] == 2  # Pong, MsPacman

