"""Shared test helpers (plain functions and classes; the fixtures built on them are in
conftest.py): the ColourMatch environment and short debug runs, comparing two run directories,
subprocess helpers for runs that are killed or interrupted (copying the workflow for real
Snakemake runs: workflow_copy.py, which benchmarks/smoke_grid_time.py uses too).

ColourMatch is a tiny pixel environment: every frame is one flat colour out of three, the action
with the colour's index pays +1, anything else 0, and an episode lasts 50 steps. The first colour
of an episode is random, then the colours cycle (c_{t+1} = c_t + 1 mod 3), so the current colour
can be predicted from the previous frame: the official acting rule acts on the world model's
*prediction* of the current frame (never on the frame itself), so an environment whose rewarding
action depends on an unpredictable current frame could not be learnt by it at all. Random play
scores 50/3 ~ 16.7 per episode, the optimum is 50 (~49.3 with the official rule, whose first
action of an episode is random).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from drama.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from drama.config import resolve_config
from drama.run_io import read_metrics

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
PY = sys.executable
COLOURS = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220]], dtype=np.uint8)


# --- ColourMatch and short debug runs ------------------------------------------------------------

class ColourMatchEnv(gym.Env):
    """64x64x3 frames of one random colour; action == colour index pays +1."""

    def __init__(self, seed: int = 0, episode_len: int = 50, nan_after: int | None = None):
        self.action_space = gym.spaces.Discrete(3)
        self.observation_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
        self.episode_len, self.nan_after, self.total = episode_len, nan_after, 0
        self.rng = np.random.default_rng(seed)
        self.protocol = {"env": "ColourMatch", "episode_len": episode_len}

    def _obs(self):
        return np.broadcast_to(COLOURS[self.colour], (64, 64, 3)).copy()

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        self.colour = int(self.rng.integers(3))
        return self._obs(), {}

    def step(self, action):
        reward = float(int(action) == self.colour)
        self.colour = (self.colour + 1) % 3
        self.t += 1
        self.total += 1
        if self.nan_after is not None and self.total > self.nan_after:
            reward = float("nan")
        return self._obs(), reward, self.t >= self.episode_len, False, {"life_loss": False}


def colour_env(seed, evaluation=False):
    return ColourMatchEnv(seed)


class SignalAtStep(ColourMatchEnv):
    """ColourMatch that sends its own process the signal ``signum`` during its ``at``-th step:
    a real SIGKILL or SIGINT at a known training step (a process started or resumed at step s
    gets it at step s + at)."""

    def __init__(self, seed: int, signum: int, at: int):
        super().__init__(seed)
        self.signum, self.at = signum, at

    def step(self, action):
        if self.total + 1 == self.at:
            os.kill(os.getpid(), self.signum)
        return super().step(action)


def env_from_environment(environ=os.environ):
    """The runner's env factory: ColourMatch, or with DRAMA_TEST_SIGNAL="KILL:30" (any signal
    name without SIG) a training env that signals its process at its 30th step."""
    spec = environ.get("DRAMA_TEST_SIGNAL")
    if not spec:
        return colour_env
    name, at = spec.split(":")
    signum = getattr(signal, f"SIG{name}")

    def env_fn(seed, evaluation=False):
        return ColourMatchEnv(seed) if evaluation else SignalAtStep(seed, signum, int(at))

    return env_fn


# Small and fast: 60-step warm-up, then updates every step; checkpoints every 40 steps.
FAST = ["replay.warmup=60", "train.eval_every=80", "train.eval_episodes=2",
        "train.final_eval_episodes=3", "train.eval_batch=3", "train.checkpoint_every=40",
        "train.log_every=20", "train.deterministic=true", "train.torch_threads=1"]


def fast_cfg(steps=120, seed=0, extra=()):
    return resolve_config("ColourMatch", seed, "drama", "debug", FAST + list(extra), steps, "cpu")


def cli_args(out, steps, seed=0, extra=()):
    """The trainer's command-line arguments for ``fast_cfg(steps, seed, extra)`` writing to
    ``out``."""
    args = ["--game", "ColourMatch", "--seed", str(seed), "--variant", "drama", "--preset",
            "debug", "--device", "cpu", "--steps", str(steps), "--out", str(out)]
    for s in [*FAST, *extra]:
        args += ["--set", s]
    return args


# The trainer's CLI on ColourMatch, as a script (a subprocess can be killed or interrupted;
# DRAMA_TEST_SIGNAL: see env_from_environment).
RUNNER = """
import sys
sys.path.insert(0, {tests!r})
from helpers import env_from_environment
from drama.train import main
sys.exit(main(sys.argv[1:], env_fn=env_from_environment()))
"""


def write_runner(directory: Path) -> list[str]:
    """Write the ColourMatch CLI script into ``directory``; the command prefix that runs it."""
    script = Path(directory) / "runner.py"
    script.write_text(RUNNER.format(tests=str(TESTS)))
    return [PY, str(script)]


def runner_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


# --- comparing runs ------------------------------------------------------------------------------

def state_tensors(run_dir):
    ck = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    return {**{f"wm.{k}": v for k, v in ck["wm"].items()},
            **{f"ac.{k}": v for k, v in ck["ac"].items()}}


def comparable_metrics(run_dir):
    rows = read_metrics(Path(run_dir) / "metrics.jsonl")
    return [{k: v for k, v in r.items() if k != "perf/env_steps_per_s"} for r in rows]


def assert_same_run(a, b):
    """Two run directories hold the same run: evaluations, metrics (but the speed), weights."""
    pd.testing.assert_frame_equal(pd.read_parquet(Path(a) / "eval.parquet"),
                                  pd.read_parquet(Path(b) / "eval.parquet"))
    assert comparable_metrics(a) == comparable_metrics(b)
    sa, sb = state_tensors(a), state_tensors(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def jsonl_series(run_dir) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl as {name: [(step, value as float32, as TensorBoard stores it)]}."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in read_metrics(Path(run_dir) / "metrics.jsonl"):
        for key, value in row.items():
            if key != "step":
                out.setdefault(key, []).append((row["step"], float(np.float32(float(value)))))
    return out


def assert_same_series(run_dir) -> None:
    """What TensorBoard's reader reads back from ``run_dir`` equals its metrics.jsonl."""
    from drama.tensorboard import read_scalars

    expected, got = jsonl_series(run_dir), read_scalars(run_dir)
    assert set(got) == set(expected), set(got) ^ set(expected)
    for key, series in expected.items():
        assert [s for s, _ in got[key]] == [s for s, _ in series], key
        np.testing.assert_array_equal([v for _, v in got[key]], [v for _, v in series],
                                      err_msg=key)


def tag_storages_as_cuda(path: Path) -> None:
    """Rewrite a checkpoint as a GPU run writes it: every tensor storage tagged 'cuda:0'."""
    from torch import serialization

    entry = (0, lambda storage: "cuda:0", lambda obj, location: None)  # test-only tagger
    ck = load_checkpoint(path)
    ck["rng"]["cuda"] = [torch.get_rng_state()[:16].clone()]  # a CUDA RNG state, as on a GPU
    serialization._package_registry.append(entry)
    serialization._package_registry.sort(key=lambda e: e[0])
    try:
        save_checkpoint(path, ck)
    finally:
        serialization._package_registry.remove(entry)


# --- processes -----------------------------------------------------------------------------------

def start_logged(cmd: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start ``cmd`` with its output in the file ``log`` (a file, not a pipe: a pipe nobody reads
    while the test waits on something else can fill and block the process)."""
    with open(log, "w") as f:
        return subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)


def wait_ok(proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Wait for a process started by ``start_logged``; it must exit 0 (else: its log's tail)."""
    assert proc.wait(timeout=timeout) == 0, f"{log}:\n{Path(log).read_text()[-3000:]}"


def train_side_by_side(root: Path, runs: dict[str, dict]) -> dict[str, Path]:
    """ColourMatch debug runs, ``fast_cfg(**kwargs)`` for each ``name: kwargs``, trained through
    the CLI as processes of one thread each, all at once (a 2-core machine trains two in the
    time of one); the run directory ``root / name`` of each."""
    runner, env = write_runner(root), runner_env(OMP_NUM_THREADS="1")
    procs = {name: start_logged([*runner, *cli_args(root / name, **kw)], root / f"{name}.log",
                                env)
             for name, kw in runs.items()}
    for name, proc in procs.items():
        wait_ok(proc, root / f"{name}.log", 900)
    return {name: root / name for name in runs}
