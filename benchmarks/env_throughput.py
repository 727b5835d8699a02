"""Agent steps/s of the Atari100k environment builders on this machine (prints a table).

    python benchmarks/env_throughput.py [--game Breakout] [--steps 2000]

Rows: ``make_env`` (one env, the training path); ``make_vector_env`` (gymnasium SyncVectorEnv
over make_env, the evaluation path, protocol-identical); ale-py's C++ ``AtariVectorEnv``
(threaded; faster, but it cannot stop the action repeat at a life loss, so it is NOT the
protocol: shown for reference only).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import time

import numpy as np

from drama.envs import make_env, make_vector_env


def _time_single(game: str, steps: int) -> float:
    env = make_env(game, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    n = env.action_space.n
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(int(rng.integers(n)))
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def _time_vector(venv, steps: int, num_envs: int, n_actions: int) -> float:
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(steps // num_envs):
        venv.step(rng.integers(n_actions, size=num_envs))
    return (steps // num_envs) * num_envs / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--game", default="Breakout")
    ap.add_argument("--steps", type=int, default=2000, help="agent steps per row")
    ap.add_argument("--num-envs", type=int, default=8)
    args = ap.parse_args()
    n_actions = make_env(args.game, seed=0).action_space.n
    rows = [("make_env (1 env)", _time_single(args.game, args.steps))]
    venv = make_vector_env(args.game, seed=0, num_envs=args.num_envs)
    rows.append((f"make_vector_env ({args.num_envs} envs, sync)",
                 _time_vector(venv, args.steps, args.num_envs, n_actions)))
    try:
        from ale_py.vector_env import AtariVectorEnv

        cvenv = AtariVectorEnv(
            re.sub(r"(?<!^)(?=[A-Z])", "_", args.game).lower(), args.num_envs,
            num_threads=os.cpu_count() or 1, img_height=64, img_width=64, grayscale=False,
            stack_num=1, noop_max=0, use_fire_reset=False, reward_clipping=False,
            life_loss_info=True, repeat_action_probability=0.0,
        )
        rows.append((f"ale_py AtariVectorEnv ({args.num_envs} envs; not the protocol)",
                     _time_vector(cvenv, args.steps, args.num_envs, n_actions)))
    except Exception as err:  # reference row only
        rows.append((f"ale_py AtariVectorEnv unavailable: {err}", float("nan")))
    print(f"# {args.game}, {args.steps} agent steps per row, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}")
    print(f"| {'builder':<55} | agent steps/s |")
    print(f"|{'-' * 57}|---------------|")
    for name, sps in rows:
        print(f"| {name:<55} | {sps:13.0f} |")


if __name__ == "__main__":
    main()
