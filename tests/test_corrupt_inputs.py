"""A damaged run file is an error naming the file and the run, and loses nothing: collect, the
analysis CLI, and the workflow, which stops before collect would delete the previous outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.cli import main as analysis_main
from analysis.collect import check_runs, collect_runs
from drama.run_io import EVAL_COLUMNS
from workflow_copy import copy_workflow, workflow_env


def write_run(run: Path, game="Pong", variant="drama", seed=0) -> Path:
    """A finished run's two files as the trainer writes them (columns of drama.train)."""
    run.mkdir(parents=True, exist_ok=True)
    rows = [{"game": game, "variant": variant, "seed": seed, "env_step": 160, "episode": i,
             "return": float(-21 + i), "length": 800, "final": True} for i in range(2)]
    pd.DataFrame(rows, columns=EVAL_COLUMNS).to_parquet(run / "eval.parquet", index=False)
    (run / "run_info.json").write_text(json.dumps(
        {"status": "complete", "game": game, "variant": variant, "seed": seed, "score": -20.5}))
    return run / "eval.parquet"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_collect_names_the_damaged_file_and_the_run(tmp_path):
    good = write_run(tmp_path / "Pong" / "drama" / "seed0")
    bad = write_run(tmp_path / "Pong" / "drama" / "seed1", seed=1)
    assert check_runs([good, bad]) == 2 and len(collect_runs([good, bad])[0]) == 2
    truncate(bad)
    for call in (lambda: collect_runs([good, bad]), lambda: check_runs([good, bad])):
        with pytest.raises(ValueError) as err:
            call()
        msg = str(err.value)
        assert f"run {bad.parent}" in msg and str(bad) in msg and "truncated" in msg, msg
    # a damaged run_info.json is named the same way; runs not finished yet are not checked
    write_run(bad.parent, seed=1)
    truncate(bad.parent / "run_info.json")
    with pytest.raises(ValueError, match="run_info.json"):
        collect_runs([good, bad])
    assert check_runs([good, tmp_path / "Pong" / "drama" / "seed9" / "eval.parquet"]) == 1


def test_analysis_cli_names_a_truncated_parquet_or_json(tmp_path, capsys):
    bad = write_run(tmp_path / "run")
    truncate(bad)
    assert analysis_main(["aggregate", str(bad), "--reps", "10"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "truncated" in err and "Traceback" not in err, err
    js = tmp_path / "IRIS.json"
    js.write_text('{"Pong": [1.0, 2.0')
    assert analysis_main(["aggregate", str(js), "--reps", "10"]) == 2
    err = capsys.readouterr().err
    assert str(js) in err and "JSON" in err, err


GRID = """games: [Pong]
seeds: [0, 1]
variants: [drama]
preset: debug
device: cpu
"""


def test_workflow_stops_before_collect_deletes_the_previous_outputs(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    (wd / "grid.yaml").write_text(GRID)
    runs = wd / "results" / "runs" / "debug" / "Pong" / "drama"
    write_run(runs / "seed0")
    bad = write_run(runs / "seed1", seed=1)
    truncate(bad)
    previous = {}
    for name in ("scores.parquet", "curves.parquet"):  # outputs of an earlier collect
        (wd / "results" / name).write_bytes(b"earlier results")
        previous[name] = (wd / "results" / name).read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "results/scores.parquet", "--cores", "1",
         "--workflow-profile", "profiles/cpu", "--configfile", "grid.yaml"],
        cwd=wd, env=workflow_env(), capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "results/runs/debug/Pong/drama/seed1" in out and "eval.parquet" in out, out[-3000:]
    for name, data in previous.items():
        assert (wd / "results" / name).read_bytes() == data, name
    assert "rule train" not in out
