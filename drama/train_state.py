"""The training loop's bookkeeping (drama/train.py): its saved state, its outcomes, the run
directory check, the progress display, stop signals, metric sums and non-finite counters.

None of it changes what the agent computes; the loop itself reads top-down in drama/train.py.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from drama.checkpoint import CHECKPOINT_NAME
from drama.run_io import atomic_write_json, environment_info


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN/Inf; failure.json in the run directory has the details."""


class Interrupted(Exception):
    """SIGINT/SIGTERM: the loop stopped at a step boundary after saving a checkpoint."""

    def __init__(self, step: int, signum: int):
        super().__init__(f"interrupted at step {step}; rerun the same command to resume")
        self.step, self.signum = step, signum


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
    ac_skipped (:func:`count_nonfinite`)."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: copy.copy(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any]) -> LoopState:
        if "loop" in ck:
            return cls(**ck["loop"])
        # format 1 (before LoopState): the counters were top-level keys
        names = {f.name for f in dataclasses.fields(cls)} & set(ck)
        return cls(**{n: ck[n] for n in names})


def expose_loop_state(cls: type) -> type:
    """Class decorator: each LoopState field ``f`` becomes a property ``cls.f`` reading and
    writing ``self.loop.f``."""

    def attribute(name: str) -> property:
        return property(lambda self: getattr(self.loop, name),
                        lambda self, value: setattr(self.loop, name, value),
                        doc=f"``self.loop.{name}`` (LoopState)")

    for field in dataclasses.fields(LoopState):
        setattr(cls, field.name, attribute(field.name))
    return cls


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


class StopSignals:
    """``with StopSignals() as stop:`` SIGINT (Ctrl-C) and SIGTERM (SLURM preemption, time
    limit) set ``stop.signum`` so the loop stops at the next step boundary, after a checkpoint;
    a second Ctrl-C acts at once as before. The previous handlers are restored on exit."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _on_signal(self, signum, frame) -> None:
        self.signum = signum
        if signum == signal.SIGINT:  # a second Ctrl-C interrupts at once
            signal.signal(signum, self._previous[signum])
        # SIGTERM stays caught: SLURM may signal every process of the job (and Snakemake
        # forward it); it sends SIGKILL after KillWait if we are not done by then

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def metric_name(prefix: str, key: str) -> str:
    """World-model/actor-critic metric keys -> metrics.jsonl names (train/loss/...)."""
    if key == "loss/total":
        return f"train/loss/{prefix}_total"
    if key.startswith("loss/"):
        return f"train/{key}"
    return f"train/{prefix}/{key}"


def accumulate(acc: dict[str, torch.Tensor], acc_n: dict[str, torch.Tensor],
               named: dict[str, torch.Tensor]) -> None:
    """Add the finite values of ``named`` to the running sums (on the device, no host sync)."""
    for k, v in named.items():
        v = v.detach().float()
        ok = torch.isfinite(v)
        v = torch.where(ok, v, torch.zeros_like(v))
        acc[k] = acc[k] + v if k in acc else v
        acc_n[k] = acc_n[k] + ok if k in acc_n else ok.long()


def mean_row(acc: dict[str, torch.Tensor], acc_n: dict[str, torch.Tensor]) -> dict[str, float]:
    """Means of the running sums (metrics with no finite value left out)."""
    return {k: float(v / acc_n[k]) for k, v in acc.items() if int(acc_n[k])}


def zero_nonfinite(device: torch.device) -> dict[str, torch.Tensor]:
    """Skipped (non-finite) update counters, on the device; read at log intervals only."""
    return {k: torch.zeros((), dtype=torch.int64, device=device)
            for k in ("run", "max_run", "wm_skipped", "ac_skipped")}


def count_nonfinite(nf: dict[str, torch.Tensor], wm_ok: torch.Tensor,
                    ac_ok: torch.Tensor) -> None:
    """Device-side counts of skipped updates and of the longest run of consecutive steps
    with a skipped update (``train.nonfinite_patience`` of them fail the run)."""
    bad = ~(wm_ok & ac_ok)
    nf["wm_skipped"] += (~wm_ok).long()
    nf["ac_skipped"] += (~ac_ok).long()
    nf["run"].copy_(torch.where(bad, nf["run"] + 1, torch.zeros_like(nf["run"])))
    nf["max_run"].copy_(torch.maximum(nf["max_run"], nf["run"]))


def completed_run_info(out: Path) -> dict[str, Any] | None:
    """run_info.json of a complete run in ``out`` (with its eval.parquet), else None."""
    info_path = out / "run_info.json"
    if not (info_path.exists() and (out / "eval.parquet").exists()):
        return None
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{info_path}: unreadable ({' '.join(str(e).split())}); "
                         "move it away to re-evaluate the run") from None
    return info if info.get("status") == "complete" else None


def run_info(trainer: Any, status: str, score: float | None, wall: float) -> dict[str, Any]:
    """run_info.json of a Trainer: what ran, how long, on what, and the score once complete."""
    cfg, seq = trainer.cfg, trainer.wm.sequence
    params = dict(trainer.wm.parameter_counts())
    params.update(trainer.ac.parameter_counts())
    return {
        "status": status, "game": cfg.game, "variant": cfg.variant,
        "preset": cfg.preset, "seed": cfg.seed, "env_steps": trainer.step,
        "steps_target": cfg.train.steps,
        "updates": {"world_model": trainer.wm_updates, "actor_critic": trainer.ac_updates},
        "wall_time_s": wall, "sequence_kind": cfg.world_model.sequence_kind,
        "sequence_backend": getattr(seq, "backend", None),
        "sequence_backend_reason": getattr(seq, "backend_reason", None),
        "protocol": getattr(trainer.env, "protocol", None), "compile": trainer.compile_info,
        "num_actions": trainer.num_actions, "parameter_counts": params, "score": score,
        "score_definition": "mean return of the final evaluation episodes",
        **environment_info(trainer.device),
    }


def write_failure(trainer: Any, counts: dict[str, int]) -> NonFiniteLossError:
    """failure.json for a run of ``train.nonfinite_patience`` non-finite updates: the last
    update's metrics, which are non-finite, the skip counts; returns the error to raise."""
    values = {k: float(v) for k, v in trainer.last_named.items()}
    bad = sorted(k for k, v in values.items() if not math.isfinite(v))
    patience = trainer.cfg.train.nonfinite_patience
    info = {"step": trainer.step, "stage": "update", "non_finite": bad,
            "consecutive_nonfinite_updates": counts["max_run"],
            "skipped_updates": {"world_model": counts["wm_skipped"],
                                "actor_critic": counts["ac_skipped"]},
            "patience": patience,
            "metrics_at_failure": values, "last_logged_metrics": trainer.last_row,
            "wm_updates": trainer.wm_updates, "ac_updates": trainer.ac_updates}
    atomic_write_json(trainer.out / "failure.json", info)
    return NonFiniteLossError(
        f"non-finite values at env step {trainer.step}: {counts['max_run']} consecutive "
        f"updates skipped (train.nonfinite_patience={patience}); "
        f"non-finite metrics {bad}; see {trainer.out / 'failure.json'}")
