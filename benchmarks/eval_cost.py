"""What the release's evaluation schedule would cost a run: time per evaluation.

    python benchmarks/eval_cost.py --game Breakout --preset debug --episodes 2 [--train-sps 60]
        [--steps 100000]

Evaluates a freshly initialised agent (the run's evaluation code: drama.evaluate with the
preset's eval_batch, greedy, train.eval_env / eval_context as resolved) for ``--episodes``
episodes and prints the episode lengths, the wall time per evaluation step (one batched acting
call and the env steps) and per evaluation. With ``--train-sps`` (a run's training speed in env
steps/s, e.g. from benchmarks/train_loop.py or gpu_check.sh) it prints what evaluating every
1,000 steps from step 0 (the release: 105 evaluations, its loop runs to 105,000 steps) adds to
the run, and what
every 10,000 (ours: 10), as a fraction of the training time. An untrained greedy policy is
the worst case and the common one early in a run: it may never start a game that needs FIRE
(Breakout), so its episodes run to the 27,000-step cap.
"""

from __future__ import annotations

import argparse
import time

import torch

from drama.config import resolve_config
from drama.evaluate import evaluate
from drama.run import atari_env_fn, build_agent, eval_episode_seeds, resolve_device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--game", default="Breakout")
    ap.add_argument("--preset", default="debug")
    ap.add_argument("--variant", default="drama")
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--train-sps", type=float, default=None,
                    help="training speed (env steps/s) to express the cost against")
    ap.add_argument("--steps", type=int, default=100_000,
                    help="run length the schedules are costed for (default: the paper's)")
    args = ap.parse_args()
    cfg = resolve_config(args.game, 0, args.variant, args.preset)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    env_fn = atari_env_fn(cfg)
    probe = env_fn(0, evaluation=True)
    n_actions = int(probe.action_space.n)
    probe.close()
    wm, ac = build_agent(cfg, n_actions, device)
    batch = min(cfg.train.eval_batch, args.episodes)
    envs = [env_fn(i, evaluation=True) for i in range(batch)]
    seeds = eval_episode_seeds(0, 0, args.episodes)
    t0 = time.time()
    res = evaluate(wm, ac, envs, seeds, greedy=cfg.train.eval_greedy, torch_seed=0,
                   device=device, carry_context=cfg.train.eval_context == "carry")
    wall = time.time() - t0
    lengths = [n for _, n in res]
    # wall-clock steps of the batched loop: the longest episode of each slot's share
    batched_steps = max(sum(lengths[j::batch]) for j in range(batch))
    per_step = wall / batched_steps
    per_eval = per_step * max(lengths) * -(-cfg.train.eval_episodes // cfg.train.eval_batch)
    print(f"{args.game} preset {args.preset} on {device}: episode lengths {lengths}; "
          f"{per_step * 1e3:.1f} ms per batched evaluation step (batch {batch}); "
          f"an evaluation of {cfg.train.eval_episodes} episodes at these lengths: {per_eval:.0f} s")
    # the release's loop samples 5% more steps than it trains (105,000 for 100,000) and keeps
    # evaluating every 1,000 through them, from step 0
    for name, count in (("release (every 1,000 from step 0)", int(args.steps * 1.05) // 1000),
                        ("ours (every 10,000)", args.steps // 10000)):
        line = f"  {name}: {count} evaluations in {args.steps:,} steps, {count * per_eval:.0f} s"
        if args.train_sps:
            train_s = args.steps / args.train_sps
            line += f" = {100 * count * per_eval / train_s:.0f}% of {train_s:.0f} s of training"
        print(line)


if __name__ == "__main__":
    main()
