"""The run contract: what the trainer and every tool that reads or replays a run agree on.

* :class:`SeedStream`: the one registry of ``derive_seed(run_seed, STREAM, ...)`` purposes;
  each number belongs to one stream, so no two tools draw the same randomness by accident.
* The environment: :func:`atari_env_fn` (the env factory of a config) and :func:`eval_protocol`
  (the protocol overrides of its training and evaluation envs); :func:`is_terminal` (the world
  model's termination flag of an env step); :func:`random_transitions` (a uniformly random
  policy's transitions); :func:`resolve_device`.
* The agent: :func:`build_agent` (world model + actor-critic for a config and action count, in
  the order the trainer builds them, so the parameter draws are the same everywhere).
* The evaluation protocol: the evaluation envs' construction seeds (:func:`eval_env_seed`), the
  episodes' reset seeds (:func:`eval_episode_seeds`), the evaluation's torch seed
  (:func:`eval_torch_seed`), one row per episode (:func:`episode_row`) and the eval.parquet
  frame (:func:`episode_frame`, columns ``drama.run_io.EVAL_COLUMNS``).
* The run directory: :func:`check_saved_config` (a config.yaml already there must match) and
  :func:`load_run` (config, checkpoint, networks and replay of a run, for the tools).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from drama.agent import ActorCritic
from drama.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from drama.config import RunConfig, config_from_dict, run_config_diff
from drama.evaluate import derive_seed
from drama.model_config import feature_dim
from drama.replay import ReplayBuffer
from drama.run_io import EVAL_COLUMNS, EVAL_DTYPES
from drama.world_model import WorldModel

EnvFn = Callable[..., Any]  # env_fn(seed: int, evaluation: bool) -> gymnasium.Env


class SeedStream:
    """``derive_seed(seed, SeedStream.X, ...)`` purposes, one number per stream."""

    TRAIN_EPISODE = 1  # (run seed, episode): reset seed of a training episode
    EVAL_EPISODE = 2  # (run seed, step, i): evaluation episode seeds; (run seed, 0, i): env i
    REPLAY = 3  # (run seed): the replay's sampling generator
    WARMUP = 4  # (run seed): the random actions before training starts
    EVAL_TORCH = 5  # (run seed, step[, 1]): latent/action draws of an evaluation
    RANDOM_ACTIONS = 6  # (seed): drama.random_policy's action draws
    DIAGNOSE = 7  # drama.diagnose's windows, latent samples, actions and episodes
    OPENLOOP = 8  # drama.openloop's windows and episodes (also the trainer's train.openloop)


# ------------------------------------------------------------------------------ environment
def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA if available), ``cpu``, ``cuda[:i]``; a ValueError without CUDA."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine "
                         "(use --device cpu or auto)")
    return torch.device(name)


def atari_env_fn(cfg: RunConfig) -> EnvFn:
    """``env_fn(seed, evaluation=False)`` for ``cfg.game`` under ``cfg``'s protocol; an unknown
    game is a ValueError here, before anything is built."""
    from drama.envs import ATARI100K_GAMES, make_env

    if cfg.game not in ATARI100K_GAMES:
        raise ValueError(f"unknown game {cfg.game!r}; the Atari100k games are "
                         f"{', '.join(ATARI100K_GAMES)}")
    return lambda seed, evaluation=False: make_env(cfg.game, seed, evaluation=evaluation,
                                                   **eval_protocol(cfg, evaluation))


def eval_protocol(cfg: RunConfig, evaluation: bool) -> dict:
    """Env protocol overrides: ``cfg.env``, plus for the evaluation env of
    ``train.eval_env=release`` the release's eval.py env (no repeat cut at a life loss, the
    max over the last two frames the repeat produced; tests/test_official_parity.py)."""
    if evaluation and cfg.train.eval_env == "release":
        return {"break_repeat_on_life_loss": False, "pool_last_two_seen": True, **cfg.env}
    return dict(cfg.env)


def is_terminal(terminated: bool, info: dict) -> bool:
    """The world model's termination flag of an env step: game over or a life lost."""
    return bool(terminated) or bool(info.get("life_loss", False))


def random_transitions(env, steps: int, seed: int, rng: np.random.Generator):
    """``steps`` transitions of a uniformly random policy (actions drawn from ``rng``), from a
    reset with ``seed`` (later episodes reset unseeded): yields (obs, action, reward, terminal,
    is_first) as the replay stores them."""
    n = int(env.action_space.n)
    obs, _ = env.reset(seed=seed)
    first = True
    for _ in range(steps):
        a = int(rng.integers(n))
        nxt, r, term, trunc, info = env.step(a)
        yield obs, a, float(r), is_terminal(term, info), first
        obs, first = nxt, False
        if term or trunc:
            (obs, _), first = env.reset(), True


# ------------------------------------------------------------------------------------ agent
def build_agent(cfg: RunConfig, num_actions: int,
                device: torch.device | None = None) -> tuple[WorldModel, ActorCritic]:
    """World model and actor-critic of ``cfg`` (world model first: the parameter draws follow
    the global torch generator). ``device``: where they run (None: built on the CPU, the
    sequence backend chosen as for CUDA-if-available)."""
    wm = WorldModel(cfg.world_model, num_actions, device=device)
    ac = ActorCritic(cfg.actor_critic, feature_dim(cfg.world_model), num_actions)
    if device is not None:
        wm, ac = wm.to(device), ac.to(device)
    return wm, ac


# ------------------------------------------------------------------------- evaluation protocol
def eval_env_seed(seed: int, i: int) -> int:
    """Construction seed of the run's i-th evaluation environment."""
    return derive_seed(seed, SeedStream.EVAL_EPISODE, 0, i)


def eval_episode_seeds(seed: int, step: int, episodes: int) -> list[int]:
    """Reset seeds of the evaluation episodes at ``step`` (drama.random_policy and
    drama.evaluate_run use the same, so their episodes start where the run's do)."""
    return [derive_seed(seed, SeedStream.EVAL_EPISODE, step, i) for i in range(episodes)]


def eval_torch_seed(seed: int, step: int, *extra: int) -> int:
    """Torch seed of the evaluation at ``step`` (``extra``: another stream of the same step,
    e.g. drama.evaluate_run's sampled policy)."""
    return derive_seed(seed, SeedStream.EVAL_TORCH, step, *extra)


def episode_row(cfg: RunConfig, step: int, episode: int, ret: float, length: int,
                final: bool, variant: str | None = None) -> dict:
    """One evaluation episode as a row of eval.parquet (``variant``: default ``cfg.variant``)."""
    return {"game": cfg.game, "variant": cfg.variant if variant is None else variant,
            "seed": cfg.seed, "env_step": step, "episode": episode, "return": ret,
            "length": length, "final": final}


def episode_frame(rows: list[dict]) -> pd.DataFrame:
    """Evaluation episodes as eval.parquet holds them (EVAL_COLUMNS, fixed dtypes)."""
    return pd.DataFrame(rows, columns=EVAL_COLUMNS).astype(EVAL_DTYPES)


# ----------------------------------------------------------------------------- run directory
def check_saved_config(out: Path, cfg: RunConfig) -> bool:
    """A config.yaml already in ``out`` must be readable and equal to ``cfg`` (but for
    OUTPUT_SETTINGS); a ValueError naming the differences otherwise. Returns whether config.yaml
    is to be (re)written: new, or output-only settings changed (e.g. train.tensorboard switched
    on for a run already training: recorded)."""
    path, resolved = out / "config.yaml", cfg.to_dict()
    if not path.exists():
        return True
    try:
        with open(path) as f:
            saved = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: unreadable ({type(e).__name__}: "
                         f"{' '.join(str(e).split())}); move it away or use another "
                         "--out") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: not a run config (a YAML mapping); move it away or "
                         "use another --out")
    diff = run_config_diff(saved, resolved)
    if diff:
        raise ValueError(f"{out} holds a run with a different config; use another "
                         f"--out or the same arguments. Differences (saved != now): "
                         + "; ".join(diff))
    return saved.get("train") != resolved["train"]


class RunDirError(RuntimeError):
    """A run directory cannot be loaded (missing or corrupt file, mismatching config)."""


@dataclasses.dataclass
class LoadedRun:
    cfg: RunConfig
    ck: dict[str, Any]
    wm: WorldModel
    ac: ActorCritic
    replay: ReplayBuffer
    env_fn: EnvFn
    num_actions: int
    action_names: list[str] | None
    device: torch.device

    @property
    def step(self) -> int:
        """Env steps of the checkpoint (format 2: in LoopState; format 1: top level)."""
        return int((self.ck.get("loop") or self.ck)["step"])


def load_run(run_dir: str | Path, device: str = "cpu", env_fn: EnvFn | None = None,
             need_replay: bool = True) -> LoadedRun:
    """Config, checkpoint, networks and replay of ``run_dir`` (checkpoint read on the CPU;
    networks built as the trainer builds them). ``need_replay=False``: a finished run's
    checkpoint without its replay is fine (the replay is then empty)."""
    run_dir = Path(run_dir)
    cfg_path, ck_path = run_dir / "config.yaml", run_dir / CHECKPOINT_NAME
    if not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} does not exist")
    if not cfg_path.is_file():
        raise RunDirError(f"{cfg_path} is missing: not a run directory of drama.train")
    if not ck_path.is_file():
        raise RunDirError(f"{ck_path} is missing: the run has not written a checkpoint yet "
                          f"(drama.train writes one every train.checkpoint_every steps)")
    try:
        with open(cfg_path) as f:
            saved = yaml.safe_load(f)
        cfg = config_from_dict(saved)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as e:
        raise RunDirError(f"{cfg_path} is not a valid run config: {e}") from e
    try:
        ck = load_checkpoint(ck_path, map_location="cpu")
    except CheckpointError as e:
        raise RunDirError(str(e)) from e
    missing = [k for k in ("config", "wm", "ac") if k not in ck]
    if missing:
        raise RunDirError(f"checkpoint {ck_path} lacks {missing}: not a drama.train checkpoint")
    if need_replay and "replay" not in ck:
        raise RunDirError(
            f"checkpoint {ck_path} holds no replay: the run finished and dropped it "
            f"(train.keep_replay=false); the diagnosis needs the replay, so train with "
            f"--set train.keep_replay=true, or diagnose a checkpoint of a run still training")
    diff = run_config_diff(ck["config"], saved)
    if diff:
        raise RunDirError(f"{ck_path} and {cfg_path} disagree: {'; '.join(diff)}")
    if cfg.train.torch_threads > 0:
        torch.set_num_threads(cfg.train.torch_threads)
    dev = resolve_device(device)
    env_fn = env_fn if env_fn is not None else atari_env_fn(cfg)
    env = env_fn(derive_seed(cfg.seed, SeedStream.DIAGNOSE), evaluation=False)
    num_actions = int(env.action_space.n)
    names = None
    unwrapped = getattr(getattr(env, "_env", env), "unwrapped", None)
    if unwrapped is not None and hasattr(unwrapped, "get_action_meanings"):
        names = [str(n) for n in unwrapped.get_action_meanings()]
    env.close()
    wm, ac = build_agent(cfg, num_actions, dev)
    replay = ReplayBuffer(cfg.replay, device=dev, seed=0)
    try:
        wm.load_state_dict(ck["wm"])
        ac.load_state_dict(ck["ac"])
        if "replay" in ck:
            replay.load_state_dict(ck["replay"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise RunDirError(f"checkpoint {ck_path} does not fit the networks of {cfg_path} "
                          f"({num_actions} actions): {e}") from e
    wm.eval()
    ac.eval()
    return LoadedRun(cfg, ck, wm, ac, replay, env_fn, num_actions, names, dev)
