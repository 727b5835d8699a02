"""Run files: readable under the user's umask, bounded (a finished run drops its replay), and the
final checkpoint's loop state. (The loop state saved whole, so that a resumed run logs the same
rows: tests/test_train.py's exact-resume test.)"""

from __future__ import annotations

import os
import stat

import pytest
from helpers import colour_env, fast_cfg

from drama.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from drama.run_io import atomic_write_text, read_metrics
from drama.train import Trainer, train


def test_atomic_writes_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        os.umask(0o027)
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o640


@pytest.mark.slow
def test_finished_run_drops_the_replay_and_metrics_survive_resume(tmp_path):
    extra = ["train.eval_every=0", "train.final_eval_episodes=1", "train.log_every=30",
             "train.checkpoint_every=40"]
    # full run: log rows at 30, 60, 90; checkpoints at 40, 80, 100
    full = tmp_path / "full"
    train(fast_cfg(steps=100, extra=extra), full, env_fn=colour_env)
    ck = load_checkpoint(full / CHECKPOINT_NAME)
    assert "replay" not in ck and {"wm", "ac", "loop"} <= set(ck)
    kept = tmp_path / "kept"
    train(fast_cfg(steps=100, extra=[*extra, "train.keep_replay=true"]), kept, env_fn=colour_env)
    assert "replay" in load_checkpoint(kept / CHECKPOINT_NAME)
    # the kept replay is the 100 filled slots (12,313 bytes each), not the preallocated
    # 20,000-slot storage (246 MB)
    assert (kept / CHECKPOINT_NAME).stat().st_size < 30e6
    size_full = (full / CHECKPOINT_NAME).stat().st_size
    assert (kept / CHECKPOINT_NAME).stat().st_size - size_full >= 100 * 64 * 64 * 3  # frames
    # rerunning the finished run is a no-op; continuing it needs the replay
    assert train(fast_cfg(steps=100, extra=extra), full, env_fn=colour_env)["status"] == \
        "complete"
    # the run can be evaluated again from it (eval.parquet lost), not trained further
    (full / "eval.parquet").unlink()
    assert train(fast_cfg(steps=100, extra=extra), full, env_fn=colour_env)["status"] == \
        "complete"
    t = Trainer(fast_cfg(steps=100, extra=extra), full, env_fn=colour_env)
    with pytest.raises(CheckpointError, match="without its replay"):
        t._restore({**ck, "step": 60})
    # the metric sums since the last row are part of the checkpoint (LoopState.acc): a run
    # resumed from step 80 logs the same row at 90 (end to end: test_train.py's exact-resume test)
    # The finished checkpoint is written after the final evaluation, whose metrics row (step
    # 100) took the sums of steps 91-100: they are in that row, and the checkpoint holds the
    # final evaluation and empty sums
    ck100 = load_checkpoint(kept / CHECKPOINT_NAME)
    assert ck100["loop"]["final_rows"] and not ck100["loop"]["acc"]
    last = read_metrics(kept / "metrics.jsonl")[-1]
    assert last["step"] == 100 and "eval_final/return_mean" in last and "train/loss/rec" in last
