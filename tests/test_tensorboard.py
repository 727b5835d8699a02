"""The TensorBoard sink (train.tensorboard) and the metrics table (docs/metrics.md), against real
debug runs: what TensorBoard's own reader reads back equals metrics.jsonl, and the table names
exactly the metrics a run writes. (A run killed and resumed, whose killed process logged past its
checkpoint: tests/test_train.py's exact-resume test.)"""

import re
import subprocess

import pandas as pd
import pytest
from helpers import (PY, ROOT, assert_same_series, colour_env, fast_cfg, jsonl_series,
                     train_side_by_side)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from drama.run_io import read_metrics


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same debug run (120 steps, evaluations at 80 and the end) without and with the sink."""
    root = tmp_path_factory.mktemp("tb")
    train_side_by_side(root, {"plain": {"steps": 120},
                              "tb": {"steps": 120, "extra": ["train.tensorboard=true"]}})
    return root


def test_events_read_back_equal_metrics_jsonl(runs):
    run = runs / "tb"
    assert list(run.glob("events.out.tfevents.*"))
    assert_same_series(run)
    assert {"eval/return_mean", "eval_final/return_mean", "train/loss/rec"} <= set(
        jsonl_series(run))
    acc = EventAccumulator(str(run), size_guidance={"histograms": 0, "tensors": 0})
    acc.Reload()
    hist = {t: acc.Histograms(t) for t in acc.Tags()["histograms"]}
    assert [e.step for e in hist["eval/returns"]] == [80]
    assert [e.step for e in hist["eval_final/returns"]] == [120]
    assert hist["eval_final/returns"][0].histogram_value.num == 3  # final_eval_episodes
    assert any(t.startswith("config") for t in acc.Tags()["tensors"])


def test_the_sink_changes_nothing_else(runs):
    """Same metrics.jsonl values (but the speed), same evaluations, no events without the
    setting; config.yaml records the setting."""
    plain, tb = runs / "plain", runs / "tb"
    assert not list(plain.glob("events.out.tfevents.*"))

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "perf/env_steps_per_s"} for r in rows]

    assert strip(read_metrics(plain / "metrics.jsonl")) == strip(read_metrics(tb / "metrics.jsonl"))
    pd.testing.assert_frame_equal(pd.read_parquet(plain / "eval.parquet"),
                                  pd.read_parquet(tb / "eval.parquet"))
    assert "tensorboard: true" in (tb / "config.yaml").read_text()


def test_metrics_doc_names_every_logged_metric(runs):
    """docs/metrics.md's table names exactly the keys a debug run writes to metrics.jsonl (all
    three kinds of rows: training averages, episode ends, periodic and final evaluations)."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    documented = re.findall(r"^\| `([^`]+)` \|", text, flags=re.M)
    assert len(documented) == len(set(documented)), "a metric is listed twice"
    written = set(jsonl_series(runs / "plain"))
    assert {"episode/score", "eval/return_mean", "eval_final/return_mean"} <= written
    assert set(documented) == written, (
        f"undocumented: {sorted(written - set(documented))}; "
        f"documented but not written: {sorted(set(documented) - written)}")
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            assert len(cells) == 5 and all(cells), line  # name, meaning, unit, healthy, where


def test_asking_without_the_package_is_one_line_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    code = ("import sys; sys.modules['tensorboard'] = None\n"  # as if not installed
            "from drama.train import main\n"
            f"sys.exit(main(['--game', 'Pong', '--seed', '0', '--variant', 'drama', '--preset',"
            f" 'debug', '--device', 'cpu', '--out', {str(out)!r}, '--tensorboard']))")
    res = subprocess.run([PY, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "tensorboard" in lines[0] and ".[tensorboard]" in lines[0], lines
    assert not out.exists()


def test_switching_the_sink_on_keeps_the_results_folder():
    from drama.config import settings_key

    assert settings_key("debug", ["train.tensorboard=true", "train.openloop=true"]) == "debug"
    assert settings_key("debug", ["train.log_every=7"]) != "debug"


def test_output_settings_can_change_when_a_run_resumes(tmp_path):
    """train.tensorboard / train.openloop may be switched on for a run already started (and are
    then recorded in its config.yaml); a setting that changes what the run computes may not."""
    import yaml

    from drama.train import Trainer

    out = tmp_path / "run"
    Trainer(fast_cfg(steps=70), out, env_fn=colour_env)
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["tensorboard"] is False
    Trainer(fast_cfg(steps=70, extra=["train.tensorboard=true", "train.openloop=true"]), out,
            env_fn=colour_env)
    saved = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert saved["tensorboard"] is True and saved["openloop"] is True
    with pytest.raises(ValueError, match="train.log_every"):
        Trainer(fast_cfg(steps=70, extra=["train.log_every=7"]), out, env_fn=colour_env)
