"""End-to-end training: outputs, determinism, exact resume after SIGKILL, failures, learning.

The learning test uses ColourMatch, a tiny pixel environment defined here: every frame is one
flat colour out of three, the action with the colour's index pays +1, anything else 0, and an
episode lasts 50 steps. The first colour of an episode is random, then the colours cycle
(c_{t+1} = c_t + 1 mod 3), so the current colour can be predicted from the previous frame: the
official acting rule acts on the world model's *prediction* of the current frame (never on the
frame itself), so an environment whose rewarding action depends on an unpredictable current
frame could not be learnt by it at all. Random play scores 50/3 ~ 16.7 per episode, the
optimum is 50 (~49.3 with the official rule, whose first action of an episode is random).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

from drama.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from drama.config import resolve_config
from drama.run_io import read_metrics
from drama.train import EVAL_COLUMNS, NonFiniteLossError, main, train

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
COLOURS = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220]], dtype=np.uint8)


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


# Small and fast: 60-step warm-up, then updates every step; checkpoints every 40 steps.
FAST = ["replay.warmup=60", "train.eval_every=80", "train.eval_episodes=2",
        "train.final_eval_episodes=3", "train.eval_batch=3", "train.checkpoint_every=40",
        "train.log_every=20", "train.deterministic=true", "train.torch_threads=1"]


def fast_cfg(steps=120, seed=0, extra=()):
    return resolve_config("ColourMatch", seed, "drama", "debug", FAST + list(extra), steps, "cpu")


def state_tensors(run_dir):
    ck = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    return {**{f"wm.{k}": v for k, v in ck["wm"].items()},
            **{f"ac.{k}": v for k, v in ck["ac"].items()}}


def comparable_metrics(run_dir):
    rows = read_metrics(Path(run_dir) / "metrics.jsonl")
    return [{k: v for k, v in r.items() if k != "perf/env_steps_per_s"} for r in rows]


def assert_same_run(a, b):
    pd.testing.assert_frame_equal(pd.read_parquet(Path(a) / "eval.parquet"),
                                  pd.read_parquet(Path(b) / "eval.parquet"))
    assert comparable_metrics(a) == comparable_metrics(b)
    sa, sb = state_tensors(a), state_tensors(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.slow
def test_outputs_and_same_seed_identical(tmp_path):
    keep = ["train.keep_replay=true"]  # the warm-up actions are compared below
    info = train(fast_cfg(extra=keep), tmp_path / "a", env_fn=colour_env)
    train(fast_cfg(extra=keep), tmp_path / "b", env_fn=colour_env)
    out = tmp_path / "a"
    assert {"config.yaml", "run_info.json", "metrics.jsonl", "eval.parquet",
            CHECKPOINT_NAME} <= {p.name for p in out.iterdir()}
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    ev = pd.read_parquet(out / "eval.parquet")
    assert list(ev.columns) == EVAL_COLUMNS
    assert ev["final"].dtype == bool and ev["final"].sum() == 3
    assert sorted(ev.loc[~ev["final"], "env_step"].unique()) == [80]  # eval_every=80, steps 120
    assert set(ev["length"]) == {50} and (ev["game"] == "ColourMatch").all()
    run_info = json.loads((out / "run_info.json").read_text())
    assert run_info["status"] == "complete" and run_info["env_steps"] == 120
    assert run_info["updates"] == {"world_model": 60, "actor_critic": 60}
    assert run_info["sequence_backend"] == "torch" and run_info["seed"] == 0
    assert run_info["parameter_counts"]["world_model"] > 0 and run_info["git_commit"]
    assert info["score"] == pytest.approx(ev.loc[ev["final"], "return"].mean())
    keys = set().union(*[r.keys() for r in read_metrics(out / "metrics.jsonl")])
    assert {"train/loss/rec", "train/loss/policy", "train/loss/value", "episode/score",
            "perf/env_steps_per_s", "eval/return_mean"} <= keys
    assert_same_run(tmp_path / "a", tmp_path / "b")
    # rerunning a finished run is a no-op
    assert train(fast_cfg(extra=keep), out, env_fn=colour_env)["status"] == "complete"
    # a different seed gives a different run (compare the random warm-up actions)
    train(fast_cfg(steps=62, seed=1, extra=["train.eval_every=0", "train.final_eval_episodes=1",
                                            *keep]),
          tmp_path / "c", env_fn=colour_env)
    acts = [load_checkpoint(tmp_path / r / CHECKPOINT_NAME)["replay"]["action"][:60]
            for r in ("a", "c")]
    assert not torch.equal(*acts)


RUNNER = """
import sys
sys.path.insert(0, {tests!r})
from test_train import colour_env
from drama.train import main
sys.exit(main(sys.argv[1:], env_fn=colour_env))
"""


def _cli(out, steps):
    args = ["--game", "ColourMatch", "--seed", "0", "--variant", "drama", "--preset", "debug",
            "--device", "cpu", "--steps", str(steps), "--out", str(out)]
    for s in FAST:
        args += ["--set", s]
    return args


def start_logged(cmd: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start ``cmd`` with its output in the file ``log`` (a file, not a pipe: a pipe nobody reads
    while the test waits on something else can fill and block the process)."""
    with open(log, "w") as f:
        return subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)


def wait_ok(proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Wait for a process started by ``start_logged``; it must exit 0 (else: its log's tail)."""
    assert proc.wait(timeout=timeout) == 0, f"{log}:\n{Path(log).read_text()[-3000:]}"


def kill_after_logged_step(proc: subprocess.Popen, run_dir: Path, step: int,
                           timeout: float) -> None:
    """SIGKILL ``proc`` once its metrics.jsonl has logged ``step`` (it must still be running)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        path = run_dir / "metrics.jsonl"
        rows = read_metrics(path) if path.exists() else []
        if rows and rows[-1]["step"] >= step:
            break
        assert proc.poll() is None, "run finished before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkill_and_resume_is_identical_to_an_uninterrupted_run(tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER.format(tests=str(ROOT / "tests")))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    steps = 200
    # the uninterrupted run alongside the one to be killed (one thread each, two cores)
    full = start_logged([PY, str(script), *_cli(tmp_path / "full", steps)],
                        tmp_path / "full.log", env)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([PY, str(script), *_cli(killed, steps)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # kill it between two checkpoints (after the one at step 120, before the one at 160)
    kill_after_logged_step(proc, killed, 140, 600)
    wait_ok(full, tmp_path / "full.log", 600)
    assert not (killed / "eval.parquet").exists()
    assert load_checkpoint(killed / CHECKPOINT_NAME)["step"] in (120, 160)
    res = subprocess.run([PY, str(script), *_cli(killed, steps)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "resumed from" in res.stdout
    assert_same_run(tmp_path / "full", killed)


def test_outputs_deleted_after_the_run_finished_are_rewritten_without_a_second_evaluation(
        tmp_path, capsys):
    """Snakemake deletes the outputs of a job that fails after the trainer finished (e.g. a SLURM
    time limit hit just then): the rerun writes eval.parquet from the finished checkpoint and
    leaves metrics.jsonl as it was (no second final evaluation, no row with an empty replay)."""
    cfg = fast_cfg(steps=70, extra=["train.eval_every=0", "train.final_eval_episodes=2"])
    out = tmp_path / "run"
    first = train(cfg, out, env_fn=colour_env)
    metrics = (out / "metrics.jsonl").read_bytes()
    evals = pd.read_parquet(out / "eval.parquet")
    assert evals["final"].sum() == 2
    assert "replay" not in load_checkpoint(out / CHECKPOINT_NAME)  # keep_replay is false
    (out / "eval.parquet").unlink()
    capsys.readouterr()
    again = train(cfg, out, env_fn=colour_env)
    assert "final evaluation found in the checkpoint" in capsys.readouterr().out
    assert (out / "metrics.jsonl").read_bytes() == metrics
    pd.testing.assert_frame_equal(pd.read_parquet(out / "eval.parquet"), evals)
    assert again["status"] == "complete" and again["score"] == first["score"]


@pytest.mark.slow
def test_corrupt_checkpoint_and_changed_config_are_errors(tmp_path):
    out = tmp_path / "run"
    train(fast_cfg(steps=70, extra=["train.eval_every=0", "train.final_eval_episodes=1"]), out,
          env_fn=colour_env)
    (out / "eval.parquet").unlink()  # make it look unfinished
    ck = out / CHECKPOINT_NAME
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        train(fast_cfg(steps=70, extra=["train.eval_every=0", "train.final_eval_episodes=1"]),
              out, env_fn=colour_env)
    with pytest.raises(ValueError, match="train.steps"):
        train(fast_cfg(steps=71), out, env_fn=colour_env)


def test_non_finite_loss_stops_with_diagnostic(tmp_path):
    # an absurd learning rate blows the world model up within a few updates; every later
    # update is non-finite and skipped, and 5 consecutive ones (patience) fail the run at the
    # next check (log interval 20 steps)
    patience = ["train.nonfinite_patience=5"]
    cfg = fast_cfg(steps=100, extra=["world_model.lr=1e30", "world_model.warmup_updates=0",
                                     *patience])
    with pytest.raises(NonFiniteLossError, match="consecutive"):
        train(cfg, tmp_path / "lr", env_fn=colour_env)
    diag = json.loads((tmp_path / "lr" / "failure.json").read_text())
    assert 66 <= diag["step"] < 100 and diag["non_finite"], diag
    assert diag["stage"] == "update" and diag["consecutive_nonfinite_updates"] >= 5
    assert diag["skipped_updates"]["world_model"] >= 5
    assert not (tmp_path / "lr" / "eval.parquet").exists()
    # and through the CLI: exit code 3
    code = main(_cli(tmp_path / "cli", 100) + ["--set", "world_model.lr=1e30", "--set",
                                               "world_model.warmup_updates=0", "--set",
                                               patience[0]], env_fn=colour_env)
    assert code == 3 and (tmp_path / "cli" / "failure.json").exists()
    # a non-finite reward from the environment is a clear error, not a training failure
    with pytest.raises(ValueError, match="non-finite reward"):
        train(fast_cfg(steps=100), tmp_path / "nan",
              env_fn=lambda seed, evaluation=False: ColourMatchEnv(seed, nan_after=10))


def test_cli_errors_name_the_problem(capsys, tmp_path):
    base = ["--seed", "0", "--out", str(tmp_path / "x"), "--preset", "debug"]
    assert main(["--game", "Pongg", "--variant", "drama", *base]) == 2
    assert "Pongg" in capsys.readouterr().err
    assert main(["--game", "Pong", "--variant", "mamba3", *base]) == 2
    assert "mamba3" in capsys.readouterr().err
    assert main(["--game", "Pong", "--variant", "drama", "--set", "train.foo=1", *base]) == 2
    assert "train.foo" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_real_atari_cli_run(tmp_path):
    out = tmp_path / "pong"
    res = subprocess.run(
        [PY, "-m", "drama.train", "--game", "Pong", "--seed", "0", "--variant", "drama",
         "--preset", "debug", "--steps", "80", "--device", "cpu", "--out", str(out),
         "--set", "replay.warmup=50", "--set", "train.eval_every=0",
         "--set", "train.final_eval_episodes=1", "--set", "train.torch_threads=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    ev = pd.read_parquet(out / "eval.parquet")
    assert len(ev) == 1 and ev["final"].all() and ev["game"].iloc[0] == "Pong"
    assert -21 <= ev["return"].iloc[0] <= 21 and ev["length"].iloc[0] > 100
    info = json.loads((out / "run_info.json").read_text())
    assert info["protocol"]["env_id"] == "ALE/Pong-v5" and info["num_actions"] == 6


LEARN_VARIANTS = ("drama", "corrected")


@pytest.fixture(scope="module")
def colour_match_runs(tmp_path_factory):
    """Both variants' 1,000-step ColourMatch runs, started together as two processes of one
    thread each (the two cores of the CI machine: half the wall time of one after the other);
    the run directory of each."""
    root = tmp_path_factory.mktemp("learn")
    script = root / "runner.py"
    script.write_text(RUNNER.format(tests=str(ROOT / "tests")))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    sets = ["replay.warmup=200", "train.eval_every=0", "train.final_eval_episodes=6",
            "train.eval_batch=6", "train.checkpoint_every=1000", "train.torch_threads=1"]
    procs = {}
    for variant in LEARN_VARIANTS:
        args = ["--game", "ColourMatch", "--seed", "0", "--variant", variant, "--preset",
                "debug", "--device", "cpu", "--steps", "1000", "--out", str(root / variant)]
        for s in sets:
            args += ["--set", s]
        procs[variant] = start_logged([PY, str(script), *args], root / f"{variant}.log", env)
    for variant, proc in procs.items():
        wait_ok(proc, root / f"{variant}.log", 1200)
    return {variant: root / variant for variant in LEARN_VARIANTS}


@pytest.mark.slow
@pytest.mark.parametrize("variant", LEARN_VARIANTS)
def test_debug_preset_learns_colour_match(colour_match_runs, variant):
    """Random play scores 50/3 ~ 16.7 per episode (std of a 6-episode mean ~1.4); the debug
    preset must reach >= 30 (optimum 50) after 1,000 env steps (800 updates), with the
    official acting/imagination (drama) and with our corrections (corrected)."""
    run = colour_match_runs[variant]
    info = json.loads((run / "run_info.json").read_text())
    ev = pd.read_parquet(run / "eval.parquet")
    assert info["status"] == "complete" and info["variant"] == variant
    assert info["env_steps"] == 1000 and len(ev) == 6 and ev["final"].all()
    assert info["score"] == pytest.approx(ev["return"].mean())
    assert info["score"] >= 30.0, ev
