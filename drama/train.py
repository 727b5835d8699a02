"""Train one Drama agent: ``python -m drama.train --game Pong --seed 0 --variant drama --out DIR``.

The loop (paper / official code, Atari100k): for each env step, act (random during the
warm-up, else the policy: by default the official 16-frame context rule, drama/evaluate.py)
and store (obs_t, a_t, r_t, terminated or life_loss, is_first); once the replay holds more than
``replay.warmup`` (1,032) transitions, every ``train.train_every`` (1) steps: one world-model
update on 16 x 128 DFS-drawn sequences and one actor-critic update on 1,024 imagined 16-step
rollouts from DFS-drawn 8-frame contexts. Every ``eval_every`` steps: ``eval_episodes``
evaluation episodes (learning curve); at the end ``final_eval_episodes`` greedy episodes whose
mean return is the run's score. The official code samples 105,000 steps and freezes training
after 100,000; we stop at ``train.steps`` (docs/deviations.md).

Outputs in DIR (docs/training.md): config.yaml, run_info.json, metrics.jsonl, eval.parquet,
checkpoint.pt and, after ``train.nonfinite_patience`` consecutive non-finite updates,
failure.json (exit code 3). Rerunning the same command resumes, exactly: the checkpoint holds
every network, optimiser, RNG, counter, the replay with its DFS counters and the acting state;
the environment is rebuilt by resetting with the episode's seed and replaying its actions,
checked against a digest of the saved frame. Ctrl-C / SIGTERM stop after a checkpoint (exit
130 / 143); a user error is one line and exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drama.checkpoint import (CHECKPOINT_NAME, CheckpointError, load_checkpoint, rng_state,
                              save_checkpoint, seed_everything, set_rng_state,
                              use_deterministic_algorithms)
from drama.compile import install_compiled_updates
from drama.config import RunConfig, load_presets, resolve_config, run_config_diff
from drama.evaluate import derive_seed, evaluate, frame_digest, make_actor
from drama.imagination import imagine
from drama.replay import ReplayBuffer
from drama.run import (EnvFn, SeedStream, atari_env_fn, build_agent, check_saved_config,
                       episode_frame, episode_row, eval_env_seed, eval_episode_seeds,
                       eval_torch_seed, is_terminal, resolve_device)
from drama.run_io import (MetricsWriter, atomic_write_json, atomic_write_parquet,
                          atomic_write_yaml)
from drama.train_state import (Interrupted, LoopState, NonFiniteLossError, Progress,
                               StopSignals, accumulate, check_out_dir, completed_run_info,
                               count_nonfinite, expose_loop_state, mean_row, metric_name,
                               run_info, write_failure, zero_nonfinite)


@expose_loop_state
class Trainer:
    """All state of one run; ``run()`` trains, evaluates and writes the outputs."""

    def __init__(self, cfg: RunConfig, out_dir: str | Path, env_fn: EnvFn | None = None):
        self.cfg, self.out = cfg, Path(out_dir)
        # check everything before writing anything: the run directory, a config.yaml already
        # there, the device, the environment and the models; then create and write
        check_out_dir(self.out)
        rewrite_config = check_saved_config(self.out, cfg)
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
        self.env = self.env_fn(derive_seed(cfg.seed, SeedStream.TRAIN_EPISODE, 0),
                               evaluation=False)
        self.num_actions = int(self.env.action_space.n)
        self.wm, self.ac = build_agent(cfg, self.num_actions, self.device)
        self.compile_info = install_compiled_updates(self.wm, self.ac, cfg.train.compile,
                                                     self.device)  # train.compile
        self.replay = ReplayBuffer(cfg.replay, device=self.device,
                                   seed=derive_seed(cfg.seed, SeedStream.REPLAY))
        self.actor = make_actor(self.wm, self.ac, 1, self.device)
        self.warmup_rng = np.random.default_rng(derive_seed(cfg.seed, SeedStream.WARMUP))
        self.eval_envs: list = []
        self.loop = LoopState()  # counters and per-episode state (self.step, ... read it)
        self.obs: np.ndarray | None = None
        self.out.mkdir(parents=True, exist_ok=True)
        if rewrite_config:  # new, or output-only settings changed (OUTPUT_SETTINGS)
            atomic_write_yaml(self.out / "config.yaml", self.cfg.to_dict())
        self.metrics = MetricsWriter(self.out / "metrics.jsonl")
        self.last_named: dict[str, torch.Tensor] = {}
        self.loop.nonfinite = zero_nonfinite(self.device)

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        c, info = self.cfg, completed_run_info(self.out)
        if info is not None:
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
            self.reset_env()
        self.wm.eval()
        self.ac.eval()
        if c.train.tensorboard:
            from drama.tensorboard import open_run_sink

            self.metrics.sink = open_run_sink(self.out, self.step, self.cfg.to_dict())
        self._write_run_info("running")
        if c.train.eval_at_start and self.step == 0 and not self.eval_rows:
            self.eval_rows += self._evaluate(c.train.eval_episodes, final=False)
        t_window, s_window = time.time(), self.step
        progress = Progress(c.train.steps, self.step, c.train.log_every)
        with StopSignals() as stop, contextlib.closing(progress):
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
                if stop.signum is not None and self.step < c.train.steps:
                    self.save()  # a step boundary: the checkpoint resumes exactly from here
                    raise Interrupted(self.step, stop.signum)
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
        self.replay.add(self.obs, action, float(reward), is_terminal(term, info), self.is_first)
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
            self.reset_env()

    def _train_step(self) -> None:
        c = self.cfg
        self.wm.train()
        batch = self.replay.sample_world_model(c.train.wm_batch, c.train.wm_seq_len)
        wm_metrics = self.wm.update(batch)
        wm_ok = wm_metrics.pop("finite")
        named = {metric_name("wm", k): v for k, v in wm_metrics.items()}
        self.wm.eval()
        self.ac.eval()
        start = self.replay.sample_imagination(c.actor_critic.imag_batch,
                                               c.actor_critic.imag_context)
        traj = imagine(self.wm, self.ac, start, c.actor_critic.imag_horizon)
        ac_metrics = self.ac.update(traj)
        ac_ok = ac_metrics.pop("finite")
        named.update({metric_name("ac", k): v for k, v in ac_metrics.items()})
        self.ac.eval()
        self.wm_updates += 1
        self.ac_updates += 1
        count_nonfinite(self.nonfinite, wm_ok, ac_ok)
        self.last_named = named
        accumulate(self.acc, self.acc_n, named)  # running sums of the finite values

    def _evaluate(self, episodes: int, final: bool) -> list[dict]:
        c = self.cfg
        while len(self.eval_envs) < min(c.train.eval_batch, episodes):
            self.eval_envs.append(self.env_fn(eval_env_seed(c.seed, len(self.eval_envs)),
                                              evaluation=True))
        seeds = eval_episode_seeds(c.seed, self.step, episodes)
        res = evaluate(self.wm, self.ac, self.eval_envs[:min(c.train.eval_batch, episodes)],
                       seeds, greedy=c.train.eval_greedy,
                       torch_seed=eval_torch_seed(c.seed, self.step),
                       device=self.device, carry_context=c.train.eval_context == "carry")
        rows = [episode_row(c, self.step, i, r, n, final) for i, (r, n) in enumerate(res)]
        returns = np.array([r for r, _ in res])
        prefix = "eval_final" if final else "eval"
        self._log({f"{prefix}/return_mean": returns.mean(), f"{prefix}/return_std": returns.std(),
                   f"{prefix}/length_mean": float(np.mean([n for _, n in res]))})
        if self.metrics.sink is not None:  # train.tensorboard
            self.metrics.sink.histogram(f"{prefix}/returns", returns, self.step)
        if c.train.openloop:
            self._write_openloop()
        return rows

    def _log(self, extra: dict[str, float]) -> None:
        counts = self._check_nonfinite()
        row = mean_row(self.acc, self.acc_n)
        row.update(extra)
        row.update({"perf/wm_updates": self.wm_updates, "perf/ac_updates": self.ac_updates,
                    "replay/size": len(self.replay),
                    "train/skipped_updates/world_model": counts["wm_skipped"],
                    "train/skipped_updates/actor_critic": counts["ac_skipped"]})
        self.metrics.write(self.step, row)
        self.last_row = row
        self.acc, self.acc_n = {}, {}

    # -- episodes --------------------------------------------------------------------------
    def reset_env(self) -> None:
        self.obs, _ = self.env.reset(seed=self._episode_seed())
        self.is_first = True
        self.ep_return, self.ep_length, self.ep_actions = 0.0, 0, []
        self.actor.reset(1)

    def _episode_seed(self) -> int:
        return derive_seed(self.cfg.seed, SeedStream.TRAIN_EPISODE, self.episode)

    # -- checkpoint ------------------------------------------------------------------------
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
        diff = run_config_diff(ck["config"], self.cfg.to_dict())
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
        self.obs, _ = self.env.reset(seed=self._episode_seed())
        for a in self.ep_actions:
            self.obs, *_ = self.env.step(int(a))
        if frame_digest(self.obs) != ck["obs_digest"]:
            raise CheckpointError("resume: replaying the current episode's actions did not "
                                  "reproduce the saved frame (non-deterministic environment?)")
        self.actor.load_state_dict(ck["actor"])
        set_rng_state(ck["rng"])

    # -- outputs ---------------------------------------------------------------------------
    def _check_nonfinite(self) -> dict[str, int]:
        """Read the skip counters (one host sync); fail after a run of non-finite updates."""
        counts = {k: int(v) for k, v in self.nonfinite.items()}
        if counts["max_run"] >= self.cfg.train.nonfinite_patience:
            self._fail(counts)
        return counts

    def _fail(self, counts: dict[str, int]) -> None:
        """``train.nonfinite_patience`` consecutive skipped updates: failure.json, then raise."""
        error = write_failure(self, counts)
        if self.metrics.sink is not None:
            self.metrics.sink.flush()  # TensorBoard shows the curves up to the failure
        raise error

    def _write_openloop(self) -> None:
        """train.openloop: the world model's open-loop predictions on a replay window
        (drama.openloop; its own seeded randomness, so training's streams are untouched)."""
        from drama.openloop import openloop_at_step

        strip = openloop_at_step(self.wm, self.replay, self.cfg, self.step, self.out)
        if strip is not None and self.metrics.sink is not None:
            self.metrics.sink.image("openloop/strip", strip, self.step)

    def _write_run_info(self, status: str, score: float | None = None) -> dict[str, Any]:
        info = run_info(self, status, score, self.wall_time + (time.time() - self._t0))
        atomic_write_json(self.out / "run_info.json", info)
        return info


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
                   help=" | ".join(load_presets()["variants"]) + " (drama/presets.yaml)")
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
