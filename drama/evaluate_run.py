"""Evaluate a run's current checkpoint again, greedy or with sampled actions.

    python -m drama.evaluate_run RUN_DIR --episodes 8 --policy sampled --out FILE.parquet \
        [--video FILE.mp4|FILE.gif] [--device cpu]

The run's own evaluations are greedy (``train.eval_greedy``, as the official code evaluates:
argmax of the policy). After a short run the policy can still be close to uniform, and its
argmax is then an almost arbitrary fixed action: a greedy score says little about what the
policy learned. This command plays ``--episodes`` evaluation episodes with the run's acting rule
(``drama.evaluate.evaluate``, the networks of ``RUN_DIR/checkpoint.pt`` built as the trainer
builds them), on the episode seeds of the run's final evaluation (the same starts for greedy and
sampled; ``--policy greedy --episodes <train.final_eval_episodes>`` replays the run's final
evaluation exactly), and writes one row per episode with the columns of a run's eval.parquet plus
``policy`` (greedy | sampled). Nothing in RUN_DIR is changed. The CPU learning check
(config/cpu_learning.yaml) reports the sampled policy next to the greedy score.

``--video FILE`` also records the episodes (all of them, one after another) as MP4 or GIF: the
raw ALE frames at native resolution with the running score (drama/video.py); the episodes are
the same with or without it. At least one of ``--out`` and ``--video`` is needed.
Exit codes: 0 done, 2 a user error (missing/corrupt run files, bad option; nothing written).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from drama.evaluate import evaluate
from drama.run import (RunDirError, episode_frame, episode_row, eval_env_seed,
                       eval_episode_seeds, eval_torch_seed, load_run)
from drama.run_io import atomic_write_parquet

POLICIES = ("greedy", "sampled")


def evaluate_run(run_dir: str | Path, episodes: int, policy: str = "sampled",
                 device: str = "cpu", video: str | Path | None = None) -> pd.DataFrame:
    """``episodes`` evaluation episodes of the run's checkpoint; one row per episode.
    ``video``: also write them to this .mp4 / .gif file (drama.video)."""
    if policy not in POLICIES:
        raise ValueError(f"--policy must be one of {POLICIES}, got {policy!r}")
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    if video is not None:
        from drama.video import check_video_path

        check_video_path(video)  # before the episodes are played
    try:
        run = load_run(run_dir, device, need_replay=False)
    except RunDirError as e:
        raise ValueError(str(e)) from None
    c = run.cfg
    step = run.step
    batch = min(c.train.eval_batch, episodes)
    envs = [run.env_fn(eval_env_seed(c.seed, i), evaluation=True) for i in range(batch)]
    if video is not None:
        from drama.video import FrameRecorder

        envs = [FrameRecorder(env) for env in envs]
    seeds = eval_episode_seeds(c.seed, step, episodes)
    greedy = policy == "greedy"
    # greedy: the trainer's own seeds, so it replays the run's final evaluation exactly (same
    # weights, episode seeds, batch and latent draws); sampled: its own latent/action stream
    torch_seed = eval_torch_seed(c.seed, step) if greedy else eval_torch_seed(c.seed, step, 1)
    res = evaluate(run.wm, run.ac, envs, seeds, greedy=greedy, torch_seed=torch_seed,
                   device=run.device, carry_context=c.train.eval_context == "carry")
    for env in envs:
        env.close()
    if video is not None:
        from drama.video import write_video

        recorded = {}
        for env in envs:
            recorded.update(env.episodes)
        write_video(video, [recorded[s] for s in seeds])
    frame = episode_frame([episode_row(c, step, i, r, n, final=True)
                           for i, (r, n) in enumerate(res)])
    frame["policy"] = policy
    return frame


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, default=8)
    p.add_argument("--policy", default="sampled", help="sampled | greedy")
    p.add_argument("--out", default=None, help="parquet file to write")
    p.add_argument("--video", default=None, metavar="FILE",
                   help="also record the episodes: FILE.mp4 (needs the video extra) or FILE.gif")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.out is None and args.video is None:
        p.error("give --out FILE.parquet, --video FILE, or both")
    t0 = time.time()
    try:
        frame = evaluate_run(args.run_dir, args.episodes, args.policy, args.device, args.video)
        if args.out is not None:
            atomic_write_parquet(Path(args.out), frame)
    except (ValueError, OSError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    r = frame["return"]
    se = r.std(ddof=1) / np.sqrt(len(r)) if len(r) > 1 else float("nan")
    print(f"{args.run_dir}: {args.policy} policy at step {frame['env_step'].iloc[0]}: mean "
          f"return {r.mean():g} +- {se:g} (SE) over {len(r)} episodes, {time.time() - t0:.0f} s"
          + (f"; video {args.video} ({int(frame['length'].sum()) + len(r)} frames)"
             if args.video else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
