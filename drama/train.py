"""Train one Drama agent: ``python -m drama.train --game Pong --seed 0 --variant drama --out DIR``.

The loop (paper / official code, Atari100k):
  for each env step: act (random during the warm-up, else the policy: by default the
  official 16-frame context rule, see drama/evaluate.py), store (obs_t, a_t, r_t,
  terminated or life_loss, is_first);
  once the replay holds more than ``replay.warmup`` (1,032) transitions, every
  ``train.train_every`` (1) steps: one world-model update on 16 x 128 DFS-drawn sequences and
  one actor-critic update on 1,024 imagined 16-step rollouts from DFS-drawn 8-frame contexts.
  Every ``eval_every`` steps: ``eval_episodes`` evaluation episodes (learning curve); at the end
  ``final_eval_episodes`` greedy episodes whose mean return is the run's score.
  The official code samples 105,000 steps and freezes training after 100,000 "to let the last
  episode finish"; we stop at ``train.steps`` (README deviations).

Outputs in DIR: config.yaml, run_info.json, metrics.jsonl, eval.parquet (written once, at
the end, complete), checkpoint.pt (every ``checkpoint_every`` steps and at the end; after the
final evaluation it is rewritten with that evaluation and without the replay unless
``train.keep_replay``, so a rerun never evaluates or logs it twice), and failure.json
if updates stayed non-finite for ``train.nonfinite_patience`` consecutive steps (exit code 3; a
single non-finite update is skipped and counted, as the official GradScaler skips it).
Rerunning the same command resumes. Ctrl-C or SIGTERM stops at the next step boundary after a
checkpoint (exit code 130 / 143, one line); a user error is one line and exit code 2, before
anything is written.

Resume is exact: the checkpoint holds networks, optimisers, schedulers, the replay with its
DFS counters and generator, every RNG state, counters, the acting state (16-frame context or
recurrent state) and the actions of the current episode; the environment is rebuilt by
resetting with the episode's seed and replaying those actions (the emulator is deterministic
given seed and actions), which is checked against a digest of the saved current frame.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from drama.agent import ActorCritic
from drama.checkpoint import (CHECKPOINT_NAME, CheckpointError, load_checkpoint, rng_state,
                              save_checkpoint, seed_everything, set_rng_state,
                              use_deterministic_algorithms)
from drama.compile import install_compiled_updates
from drama.config import RunConfig, comparable, config_diff, resolve_config
from drama.evaluate import derive_seed, evaluate, frame_digest, make_actor
from drama.imagination import imagine
from drama.replay import ReplayBuffer
from drama.run_io import (MetricsWriter, atomic_write_json, atomic_write_parquet,
                          atomic_write_yaml, environment_info)
from drama.world_model import WorldModel

EnvFn = Callable[..., Any]  # env_fn(seed: int, evaluation: bool) -> gymnasium.Env
EVAL_COLUMNS = ["game", "variant", "seed", "env_step", "episode", "return", "length", "final"]
_EVAL_DTYPES = {"seed": "int64", "env_step": "int64", "episode": "int64", "return": "float64",
                "length": "int64", "final": "bool"}
# seed-derivation purposes (derive_seed(run_seed, PURPOSE, ...))
_TRAIN_EPISODE, _EVAL_EPISODE, _REPLAY, _WARMUP, _EVAL_TORCH = 1, 2, 3, 4, 5
_OPENLOOP = 8  # (drama.diagnose uses 7)


def eval_env_seed(seed: int, i: int) -> int:
    """Construction seed of the run's i-th evaluation environment."""
    return derive_seed(seed, _EVAL_EPISODE, 0, i)


def eval_episode_seeds(seed: int, step: int, episodes: int) -> list[int]:
    """Reset seeds of the evaluation episodes at ``step`` (drama.random_policy and
    drama.evaluate_run use the same, so their episodes start where the run's do)."""
    return [derive_seed(seed, _EVAL_EPISODE, step, i) for i in range(episodes)]


def episode_frame(rows: list[dict]) -> pd.DataFrame:
    """Evaluation episodes as eval.parquet holds them (EVAL_COLUMNS, fixed dtypes)."""
    return pd.DataFrame(rows, columns=EVAL_COLUMNS).astype(_EVAL_DTYPES)


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN/Inf; failure.json in the run directory has the details."""


class Interrupted(Exception):
    """SIGINT/SIGTERM: the loop stopped at a step boundary after saving a checkpoint."""

    def __init__(self, step: int, signum: int):
        super().__init__(f"interrupted at step {step}; rerun the same command to resume")
        self.step, self.signum = step, signum


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine "
                         "(use --device cpu or auto)")
    return torch.device(name)


def check_out_dir(out: Path) -> None:
    """--out must be a directory we can create and write; a ValueError naming it otherwise."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"--out {out}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: {probe} is not writable")
    for name in ("config.yaml", "metrics.jsonl", "run_info.json", CHECKPOINT_NAME):
        path = out / name
        if path.exists() and not os.access(path if name != CHECKPOINT_NAME else out, os.W_OK):
            raise ValueError(f"--out {out}: {path} is not writable")


def atari_env_fn(cfg: RunConfig) -> EnvFn:
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


def _metric_name(prefix: str, key: str) -> str:
    """World-model/actor-critic metric keys -> metrics.jsonl names (train/loss/...)."""
    if key == "loss/total":
        return f"train/loss/{prefix}_total"
    if key.startswith("loss/"):
        return f"train/{key}"
    return f"train/{prefix}/{key}"


class Progress:
    """tqdm bar on a terminal, plain log lines every ``every`` steps otherwise."""

    def __init__(self, total: int, start: int, every: int):
        self.total, self.every, self.bar = total, every, None
        self._t, self._step, self.rate = time.time(), start, 0.0
        if sys.stdout.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def update(self, step: int, score: float | None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if step % 50 == 0:
                self.bar.set_postfix(score="-" if score is None else f"{score:g}")
        elif step % self.every == 0 or step == self.total:
            now = time.time()
            self.rate = (step - self._step) / max(now - self._t, 1e-9)
            self._t, self._step = now, step
            print(f"step {step}/{self.total} | {self.rate:.2f} steps/s | last episode score "
                  f"{'-' if score is None else f'{score:g}'}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclasses.dataclass
class LoopState:
    """Every counter and per-episode value of the training loop, saved and restored whole by
    the checkpoint (a new field needs no other change; ``Trainer`` exposes each as an
    attribute of the same name, e.g. ``trainer.step``)."""

    step: int = 0
    episode: int = 0
    wm_updates: int = 0
    ac_updates: int = 0
    ep_return: float = 0.0
    ep_length: int = 0
    ep_actions: list[int] = dataclasses.field(default_factory=list)
    is_first: bool = True
    last_score: float | None = None
    eval_rows: list[dict] = dataclasses.field(default_factory=list)
    final_rows: list[dict] | None = None
    """The final evaluation, once done: saved with the finished checkpoint, so a process killed
    after it (or a workflow that deleted eval.parquet) writes the outputs without evaluating and
    logging the final evaluation twice."""
    wall_time: float = 0.0
    """Seconds of earlier processes of this run (the current one's are added when saved)."""
    acc: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    """Sums of the training metrics since the last metrics.jsonl row (survive a resume)."""
    acc_n: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    """Finite values summed in ``acc`` per metric."""
    last_row: dict[str, float] = dataclasses.field(default_factory=dict)
    nonfinite: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    """Skipped (non-finite) updates, counted on the device: run, max_run, wm_skipped,
    ac_skipped (``Trainer._zero_nonfinite``)."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: copy.copy(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any]) -> LoopState:
        if "loop" in ck:
            return cls(**ck["loop"])
        # format 1 (before LoopState): the counters were top-level keys
        names = {f.name for f in dataclasses.fields(cls)} & set(ck)
        return cls(**{n: ck[n] for n in names})


class Trainer:
    """All state of one run; ``run()`` trains, evaluates and writes the outputs."""

    def __init__(self, cfg: RunConfig, out_dir: str | Path, env_fn: EnvFn | None = None):
        self.cfg, self.out = cfg, Path(out_dir)
        # check everything before writing anything: the run directory, a config.yaml already
        # there, the device, the environment and the models; then create and write
        check_out_dir(self.out)
        self._check_saved_config()
        if cfg.train.tensorboard:
            from drama.tensorboard import require_tensorboard

            require_tensorboard()  # a one-line error before anything is written
        seed_everything(cfg.seed)
        if cfg.train.deterministic:
            use_deterministic_algorithms()  # also CUBLAS_WORKSPACE_CONFIG (drama/checkpoint.py)
        if cfg.train.torch_threads > 0:
            torch.set_num_threads(cfg.train.torch_threads)
        self.device = resolve_device(cfg.device)
        self.env_fn = env_fn if env_fn is not None else atari_env_fn(cfg)
        self.env = self.env_fn(derive_seed(cfg.seed, _TRAIN_EPISODE, 0), evaluation=False)
        self.num_actions = int(self.env.action_space.n)
        wcfg = cfg.world_model
        self.wm = WorldModel(wcfg, self.num_actions, device=self.device).to(self.device)
        feat_dim = wcfg.stoch * wcfg.classes + wcfg.d_model
        self.ac = ActorCritic(cfg.actor_critic, feat_dim, self.num_actions).to(self.device)
        self.compile_info = install_compiled_updates(self.wm, self.ac, cfg.train.compile,
                                                     self.device)  # train.compile
        self.replay = ReplayBuffer(cfg.replay, device=self.device,
                                   seed=derive_seed(cfg.seed, _REPLAY))
        self.actor = make_actor(self.wm, self.ac, 1, self.device)
        self.warmup_rng = np.random.default_rng(derive_seed(cfg.seed, _WARMUP))
        self.eval_envs: list = []
        self.loop = LoopState()  # counters and per-episode state (self.step, ... read it)
        self.obs: np.ndarray | None = None
        self.out.mkdir(parents=True, exist_ok=True)
        if self._rewrite_config:  # new, or output-only settings changed (OUTPUT_SETTINGS)
            atomic_write_yaml(self.out / "config.yaml", self.cfg.to_dict())
        self.metrics = MetricsWriter(self.out / "metrics.jsonl")
        self.last_named: dict[str, torch.Tensor] = {}
        self._zero_nonfinite()

    # -- setup ----------------------------------------------------------------------------
    def _check_saved_config(self) -> None:
        """A config.yaml already in --out must be readable and equal to this run's."""
        path, resolved = self.out / "config.yaml", self.cfg.to_dict()
        self._rewrite_config = not path.exists()
        if path.exists():
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
            diff = config_diff(comparable(saved), comparable(resolved))
            if diff:
                raise ValueError(f"{self.out} holds a run with a different config; use another "
                                 f"--out or the same arguments. Differences (saved != now): "
                                 + "; ".join(diff))
            # e.g. train.tensorboard switched on for a run already training: recorded
            self._rewrite_config = saved.get("train") != resolved["train"]

    def _zero_nonfinite(self) -> None:
        """Skipped (non-finite) updates, counted on the device; read at log intervals only."""
        self.loop.nonfinite = {k: torch.zeros((), dtype=torch.int64, device=self.device)
                               for k in ("run", "max_run", "wm_skipped", "ac_skipped")}

    def _reset_env(self) -> None:
        seed = derive_seed(self.cfg.seed, _TRAIN_EPISODE, self.episode)
        self.obs, _ = self.env.reset(seed=seed)
        self.is_first = True
        self.ep_return, self.ep_length, self.ep_actions = 0.0, 0, []
        self.actor.reset(1)

    # -- checkpoint -----------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "format": 2, "config": self.cfg.to_dict(),
            "loop": {**self.loop.to_dict(),
                     "wall_time": self.wall_time + (time.time() - self._t0)},
            "step": self.step,  # also in "loop"; read by tools and tests
            "obs_digest": frame_digest(self.obs),
            "metrics_offset": self.metrics.offset(),
            "wm": self.wm.state_dict(), "wm_opt": self.wm.optimizer.state_dict(),
            "wm_sched": self.wm.scheduler.state_dict(),
            "ac": self.ac.state_dict(), "ac_opt": self.ac.optimizer.state_dict(),
            "ac_sched": self.ac.scheduler.state_dict(),
            "replay": self.replay.state_dict(),
            "actor": self.actor.state_dict(),
            "warmup_rng": self.warmup_rng.bit_generator.state, "rng": rng_state(),
        }

    def save(self) -> None:
        self._check_nonfinite()
        save_checkpoint(self.out / CHECKPOINT_NAME, self._state())
        if self.metrics.sink is not None:
            self.metrics.sink.flush()  # the events up to the checkpoint are on disk

    def _restore(self, ck: dict[str, Any]) -> None:
        diff = config_diff(comparable(ck["config"]), comparable(self.cfg.to_dict()))
        if diff:
            raise CheckpointError(f"checkpoint config differs from this run: {'; '.join(diff)}")
        self.wm.load_state_dict(ck["wm"])
        self.wm.optimizer.load_state_dict(ck["wm_opt"])
        self.wm.scheduler.load_state_dict(ck["wm_sched"])
        self.ac.load_state_dict(ck["ac"])
        self.ac.optimizer.load_state_dict(ck["ac_opt"])
        self.ac.scheduler.load_state_dict(ck["ac_sched"])
        if "replay" in ck:
            self.replay.load_state_dict(ck["replay"])
        elif self.cfg.train.steps > ck["step"]:
            raise CheckpointError(f"{self.out / CHECKPOINT_NAME} is a finished run's checkpoint "
                                  "without its replay (train.keep_replay was false): it can be "
                                  "evaluated but not trained further")
        device_counters = self.nonfinite  # keep these tensors (in place: captured graphs)
        self.loop = LoopState.from_checkpoint(ck)
        for k, v in self.loop.nonfinite.items():
            device_counters[k].copy_(v)
        self.loop.nonfinite = device_counters
        self.metrics.truncate(ck["metrics_offset"])
        self.warmup_rng.bit_generator.state = ck["warmup_rng"]
        # rebuild the environment: reset with the episode seed and replay its actions
        self.obs, _ = self.env.reset(seed=derive_seed(self.cfg.seed, _TRAIN_EPISODE,
                                                      self.episode))
        for a in self.ep_actions:
            self.obs, *_ = self.env.step(int(a))
        if frame_digest(self.obs) != ck["obs_digest"]:
            raise CheckpointError("resume: replaying the current episode's actions did not "
                                  "reproduce the saved frame (non-deterministic environment?)")
        self.actor.load_state_dict(ck["actor"])
        set_rng_state(ck["rng"])

    # -- one step -------------------------------------------------------------------------
    def _train_step(self) -> None:
        c = self.cfg
        self.wm.train()
        batch = self.replay.sample_world_model(c.train.wm_batch, c.train.wm_seq_len)
        wm_metrics = self.wm.update(batch)
        wm_ok = wm_metrics.pop("finite")
        named = {_metric_name("wm", k): v for k, v in wm_metrics.items()}
        self.wm.eval()
        self.ac.eval()
        start = self.replay.sample_imagination(c.actor_critic.imag_batch,
                                               c.actor_critic.imag_context)
        traj = imagine(self.wm, self.ac, start, c.actor_critic.imag_horizon)
        ac_metrics = self.ac.update(traj)
        ac_ok = ac_metrics.pop("finite")
        named.update({_metric_name("ac", k): v for k, v in ac_metrics.items()})
        self.ac.eval()
        self.wm_updates += 1
        self.ac_updates += 1
        self._count_nonfinite(wm_ok, ac_ok)
        self.last_named = named
        for k, v in named.items():  # running sums of the finite values (no host sync)
            v = v.detach().float()
            ok = torch.isfinite(v)
            v = torch.where(ok, v, torch.zeros_like(v))
            self.acc[k] = self.acc[k] + v if k in self.acc else v
            self.acc_n[k] = self.acc_n[k] + ok if k in self.acc_n else ok.long()

    def _count_nonfinite(self, wm_ok: torch.Tensor, ac_ok: torch.Tensor) -> None:
        """Device-side counts of skipped updates and of the longest run of consecutive steps
        with a skipped update (``train.nonfinite_patience`` of them fail the run)."""
        nf = self.nonfinite
        bad = ~(wm_ok & ac_ok)
        nf["wm_skipped"] += (~wm_ok).long()
        nf["ac_skipped"] += (~ac_ok).long()
        nf["run"].copy_(torch.where(bad, nf["run"] + 1, torch.zeros_like(nf["run"])))
        nf["max_run"].copy_(torch.maximum(nf["max_run"], nf["run"]))

    def _check_nonfinite(self) -> dict[str, int]:
        """Read the skip counters (one host sync); fail after a run of non-finite updates."""
        counts = {k: int(v) for k, v in self.nonfinite.items()}
        if counts["max_run"] >= self.cfg.train.nonfinite_patience:
            self._fail(self.last_named, "update", counts)
        return counts

    def _fail(self, named: dict[str, torch.Tensor], stage: str,
              counts: dict[str, int]) -> None:
        values = {k: float(v) for k, v in named.items()}
        bad = sorted(k for k, v in values.items() if not math.isfinite(v))
        info = {"step": self.step, "stage": stage, "non_finite": bad,
                "consecutive_nonfinite_updates": counts["max_run"],
                "skipped_updates": {"world_model": counts["wm_skipped"],
                                    "actor_critic": counts["ac_skipped"]},
                "patience": self.cfg.train.nonfinite_patience,
                "metrics_at_failure": values, "last_logged_metrics": self.last_row,
                "wm_updates": self.wm_updates, "ac_updates": self.ac_updates}
        atomic_write_json(self.out / "failure.json", info)
        if self.metrics.sink is not None:
            self.metrics.sink.flush()  # TensorBoard shows the curves up to the failure
        raise NonFiniteLossError(
            f"non-finite values at env step {self.step}: {counts['max_run']} consecutive "
            f"updates skipped (train.nonfinite_patience={self.cfg.train.nonfinite_patience}); "
            f"non-finite metrics {bad}; see {self.out / 'failure.json'}")

    def _log(self, extra: dict[str, float]) -> None:
        counts = self._check_nonfinite()
        row = {k: float(v / self.acc_n[k]) for k, v in self.acc.items() if int(self.acc_n[k])}
        row.update(extra)
        row.update({"perf/wm_updates": self.wm_updates, "perf/ac_updates": self.ac_updates,
                    "replay/size": len(self.replay),
                    "train/skipped_updates/world_model": counts["wm_skipped"],
                    "train/skipped_updates/actor_critic": counts["ac_skipped"]})
        self.metrics.write(self.step, row)
        self.last_row = row
        self.acc, self.acc_n = {}, {}

    def _evaluate(self, episodes: int, final: bool) -> list[dict]:
        c = self.cfg
        while len(self.eval_envs) < min(c.train.eval_batch, episodes):
            self.eval_envs.append(self.env_fn(eval_env_seed(c.seed, len(self.eval_envs)),
                                              evaluation=True))
        seeds = eval_episode_seeds(c.seed, self.step, episodes)
        res = evaluate(self.wm, self.ac, self.eval_envs[:min(c.train.eval_batch, episodes)],
                       seeds, greedy=c.train.eval_greedy,
                       torch_seed=derive_seed(c.seed, _EVAL_TORCH, self.step),
                       device=self.device, carry_context=c.train.eval_context == "carry")
        rows = [{"game": c.game, "variant": c.variant, "seed": c.seed, "env_step": self.step,
                 "episode": i, "return": r, "length": n, "final": final}
                for i, (r, n) in enumerate(res)]
        returns = np.array([r for r, _ in res])
        prefix = "eval_final" if final else "eval"
        self._log({f"{prefix}/return_mean": returns.mean(), f"{prefix}/return_std": returns.std(),
                   f"{prefix}/length_mean": float(np.mean([n for _, n in res]))})
        if self.metrics.sink is not None:  # train.tensorboard
            self.metrics.sink.histogram(f"{prefix}/returns", returns, self.step)
        if c.train.openloop:
            self._write_openloop()
        return rows

    def _write_openloop(self) -> None:
        """train.openloop: the world model's open-loop predictions on a replay window
        (drama.openloop; its own seeded randomness, so training's streams are untouched)."""
        from drama.openloop import openloop_from_replay, write_openloop

        c = self.cfg
        context, horizon = c.actor_critic.imag_context, c.actor_critic.imag_horizon
        if len(self.replay) < context + horizon:
            print(f"open loop at step {self.step} skipped: the replay holds {len(self.replay)} "
                  f"transitions, fewer than {context + horizon}", flush=True)
            return
        result = openloop_from_replay(self.wm, self.replay, context, horizon,
                                      seed=derive_seed(c.seed, _OPENLOOP, self.step))
        strip = write_openloop(result, self.out / "openloop" / f"step{self.step:07d}",
                               title=f"{c.game} {c.variant} seed {c.seed}, step {self.step}")
        if self.metrics.sink is not None:
            self.metrics.sink.image("openloop/strip", strip, self.step)

    def advance(self) -> None:
        """One env step: act, store, train (after the warm-up), handle the episode end."""
        c = self.cfg
        ready = len(self.replay) > c.replay.warmup
        random_a = None if ready else self.warmup_rng.integers(self.num_actions, size=1)
        action = int(self.actor.act(self.obs[None], policy=ready, random_actions=random_a)[0])
        next_obs, reward, term, trunc, info = self.env.step(action)
        if not math.isfinite(float(reward)):
            raise ValueError(f"environment returned a non-finite reward {reward!r} at env "
                             f"step {self.step + 1} (episode {self.episode})")
        terminal = bool(term) or bool(info.get("life_loss", False))
        self.replay.add(self.obs, action, float(reward), terminal, self.is_first)
        self.obs, self.is_first = next_obs, False
        self.ep_actions.append(action)
        self.ep_return += float(reward)
        self.ep_length += 1
        self.step += 1
        if len(self.replay) > c.replay.warmup and self.step % c.train.train_every == 0:
            self._train_step()
        if term or trunc:
            self.last_score = self.ep_return
            self.metrics.write(self.step, {"episode/score": self.ep_return,
                                           "episode/length": self.ep_length})
            self.episode += 1
            self._reset_env()

    # -- main loop ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        c, info_path = self.cfg, self.out / "run_info.json"
        if info_path.exists() and (self.out / "eval.parquet").exists():
            try:
                info = json.loads(info_path.read_text())
            except (OSError, ValueError) as e:
                raise ValueError(f"{info_path}: unreadable ({' '.join(str(e).split())}); "
                                 "move it away to re-evaluate the run") from None
            if info.get("status") == "complete":
                print(f"{self.out}: run already complete (score {info.get('score')})")
                return info
        self._t0 = time.time()
        seq = self.wm.sequence
        print(f"sequence model {self.cfg.world_model.sequence_kind} on {self.device}: backend "
              f"{getattr(seq, 'backend', '?')} ({getattr(seq, 'backend_reason', '?')})", flush=True)
        ck_path = self.out / CHECKPOINT_NAME
        if ck_path.exists():
            # onto the CPU first: _restore moves what lives on the device (replay, networks,
            # optimiser state); RNG states and the replay's host mirror must stay CPU tensors
            self._restore(load_checkpoint(ck_path, map_location="cpu"))
            print(f"resumed from {ck_path} at env step {self.step}", flush=True)
        else:
            self.metrics.truncate(0)
            self._reset_env()
        self.wm.eval()
        self.ac.eval()
        if c.train.tensorboard:
            self._open_tensorboard()
        self._write_run_info("running")
        if c.train.eval_at_start and self.step == 0 and not self.eval_rows:
            self.eval_rows += self._evaluate(c.train.eval_episodes, final=False)
        progress = Progress(c.train.steps, self.step, c.train.log_every)
        t_window, s_window = time.time(), self.step
        previous = self._catch_stop_signals()
        try:
            while self.step < c.train.steps:
                self.advance()
                if self.step % c.train.log_every == 0:
                    now = time.time()
                    sps = (self.step - s_window) / max(now - t_window, 1e-9)
                    t_window, s_window = now, self.step
                    self._log({"perf/env_steps_per_s": sps})
                if c.train.eval_every and self.step % c.train.eval_every == 0 \
                        and self.step < c.train.steps:
                    self.eval_rows += self._evaluate(c.train.eval_episodes, final=False)
                if self.step % c.train.checkpoint_every == 0 or self.step == c.train.steps:
                    self.save()
                progress.update(self.step, self.last_score)
                if self._stop_signal is not None and self.step < c.train.steps:
                    self.save()  # a step boundary: the checkpoint resumes exactly from here
                    raise Interrupted(self.step, self._stop_signal)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            progress.close()
        if self.final_rows is None:
            self.final_rows = self._evaluate(c.train.final_eval_episodes, final=True)
            state = self._state()  # finished: holds the final evaluation
            if not c.train.keep_replay:  # and drops the replay unless asked to keep it
                del state["replay"]
            save_checkpoint(self.out / CHECKPOINT_NAME, state)
        else:
            print("final evaluation found in the checkpoint: writing the outputs", flush=True)
        final_rows = self.final_rows
        atomic_write_parquet(self.out / "eval.parquet", episode_frame(self.eval_rows + final_rows))
        score = float(np.mean([r["return"] for r in final_rows]))
        info = self._write_run_info("complete", score=score)
        self.metrics.close()
        print(f"done: {c.game} {c.variant} seed {c.seed}: final mean return {score:g} over "
              f"{len(final_rows)} episodes, {info['wall_time_s']:.0f} s", flush=True)
        return info

    def _open_tensorboard(self) -> None:
        """train.tensorboard: a sink beside metrics.jsonl (drama.tensorboard). purge_step:
        TensorBoard hides what an earlier process logged after the step resumed from."""
        from drama.tensorboard import TensorBoardSink

        sink = TensorBoardSink(self.out, purge_step=self.step + 1)
        sink.text("config", "```\n" + yaml.safe_dump(self.cfg.to_dict(), sort_keys=False)
                  + "```", self.step)
        self.metrics.sink = sink

    def _catch_stop_signals(self) -> dict[int, Any]:
        """SIGINT (Ctrl-C) and SIGTERM (SLURM preemption, time limit) stop the loop at the next
        step boundary, after a checkpoint; a second Ctrl-C acts at once as before."""
        self._stop_signal: int | None = None
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}

        def on_signal(signum, frame):
            self._stop_signal = signum
            if signum == signal.SIGINT:  # a second Ctrl-C interrupts at once
                signal.signal(signum, previous[signum])
            # SIGTERM stays caught: SLURM may signal every process of the job (and Snakemake
            # forward it); it sends SIGKILL after KillWait if we are not done by then

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, on_signal)
        return previous

    def _write_run_info(self, status: str, score: float | None = None) -> dict[str, Any]:
        wall = self.wall_time + (time.time() - self._t0)
        backend = getattr(self.wm.sequence, "backend", None)
        params = dict(self.wm.parameter_counts())
        params.update(self.ac.parameter_counts())
        info = {
            "status": status, "game": self.cfg.game, "variant": self.cfg.variant,
            "preset": self.cfg.preset, "seed": self.cfg.seed, "env_steps": self.step,
            "steps_target": self.cfg.train.steps,
            "updates": {"world_model": self.wm_updates, "actor_critic": self.ac_updates},
            "wall_time_s": wall, "sequence_kind": self.cfg.world_model.sequence_kind,
            "sequence_backend": backend,
            "sequence_backend_reason": getattr(self.wm.sequence, "backend_reason", None),
            "protocol": getattr(self.env, "protocol", None), "compile": self.compile_info,
            "num_actions": self.num_actions, "parameter_counts": params, "score": score,
            "score_definition": "mean return of the final evaluation episodes",
            **environment_info(self.device),
        }
        atomic_write_json(self.out / "run_info.json", info)
        return info


def _loop_attribute(name: str) -> property:
    return property(lambda self: getattr(self.loop, name),
                    lambda self, value: setattr(self.loop, name, value),
                    doc=f"``self.loop.{name}`` (LoopState)")


for _field in dataclasses.fields(LoopState):
    setattr(Trainer, _field.name, _loop_attribute(_field.name))


def train(cfg: RunConfig, out_dir: str | Path, env_fn: EnvFn | None = None) -> dict[str, Any]:
    """Train (or resume) a run in ``out_dir``; returns the final run_info dict.

    ``env_fn(seed, evaluation=False)`` builds an environment (default: drama.envs.make_env for
    ``cfg.game`` with the protocol overrides ``cfg.env``).
    """
    return Trainer(cfg, out_dir, env_fn).run()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m drama.train", description=__doc__.split("\n")[0])
    p.add_argument("--game", required=True, help="Atari100k game, e.g. Pong")
    p.add_argument("--seed", required=True, type=int, help="run seed (everything derives from it)")
    p.add_argument("--variant", required=True,
                   help="drama | uniform | mamba1 | transformer | gru")
    p.add_argument("--out", required=True, help="run directory (rerun to resume)")
    p.add_argument("--preset", default="atari100k",
                   help="atari100k (paper) | debug (CPU plumbing check) | cpu (CPU learning check)")
    p.add_argument("--steps", type=int, default=None, help="env steps (overrides train.steps)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set world_model.lr=1e-4 (repeatable)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard events into --out (= --set train.tensorboard=true)")
    p.add_argument("--openloop", action="store_true",
                   help="open-loop prediction strips at each evaluation (= --set "
                        "train.openloop=true)")
    return p


def main(argv: list[str] | None = None, env_fn: EnvFn | None = None) -> int:
    """Exit codes: 0 done, 2 a user error (one line naming the file or key; nothing written),
    3 non-finite losses (failure.json), 130 / 143 interrupted by SIGINT / SIGTERM after a
    checkpoint (rerun the same command to resume)."""
    args = build_parser().parse_args(argv)

    def one_line(e: BaseException) -> str:
        return " ".join(str(e).split())

    try:
        sets = args.set + (["train.tensorboard=true"] if args.tensorboard else []) \
            + (["train.openloop=true"] if args.openloop else [])
        cfg = resolve_config(args.game, args.seed, args.variant, args.preset, sets,
                             args.steps, args.device)
        if env_fn is None:
            atari_env_fn(cfg)  # validates the game name before anything is written
        train(cfg, args.out, env_fn)
    except Interrupted as e:
        print(one_line(e), file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint",
              file=sys.stderr)
        return 130
    except NonFiniteLossError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 3
    except (ValueError, CheckpointError, OSError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
