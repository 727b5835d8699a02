"""Checkpoint files: one self-checking file holding the whole training state.

Layout: ``MAGIC`` line, the sha256 of the payload, a newline, then the ``torch.save`` payload.
Writing goes through :func:`drama.run_io.atomic_write_bytes`, so a checkpoint is either the
previous complete one or the new complete one. Reading verifies magic and hash and raises
:class:`CheckpointError` naming the file and the problem: a damaged checkpoint is never
silently replaced by a fresh start.

RNG helpers capture and restore Python's, NumPy's and torch's (CPU and CUDA) global streams.

Device rule: a checkpoint is always loaded onto the CPU (``map_location="cpu"``, the default
here) and each consumer moves what must live on the device (``load_state_dict`` of modules,
optimisers and the replay buffer do). torch's RNG ``set_state`` calls and NumPy accept only CPU
tensors, so loading straight onto CUDA would break the resume of a GPU run.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drama.run_io import atomic_write_bytes

MAGIC = b"DRAMA-CKPT-1\n"
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used (corrupt, truncated, wrong format)."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> int:
    """Atomically write ``state``; returns the file size in bytes."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    data = MAGIC + digest + b"\n" + payload
    atomic_write_bytes(path, data)
    return len(data)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict[str, Any]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    if not data.startswith(MAGIC):
        raise CheckpointError(f"checkpoint {path} is corrupt: bad header (not a Drama "
                              f"checkpoint, or overwritten); delete the run directory to restart")
    head = len(MAGIC)
    digest, payload = data[head:head + 64], data[head + 65:]
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise CheckpointError(f"checkpoint {path} is corrupt: sha256 mismatch (truncated or "
                              f"damaged file); delete the run directory to restart")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise CheckpointError(f"checkpoint {path} is corrupt: cannot unpickle ({e})") from e


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the streams of :func:`rng_state`; tensors may come from any device."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())  # set_state needs a CPU ByteTensor
    if "cuda" in state and torch.cuda.is_available():
        saved = [s.cpu() for s in state["cuda"]]
        for i in range(min(len(saved), torch.cuda.device_count())):  # fewer GPUs now: the first
            torch.cuda.set_rng_state(saved[i], i)


def use_deterministic_algorithms() -> None:
    """``train.deterministic``: deterministic kernels only, on CPU and CUDA.

    - CUBLAS_WORKSPACE_CONFIG=:4096:8 (unless already set) so that cuBLAS matmuls are
      deterministic; torch raises at the first CUDA matmul without it. It must be in the
      environment before cuBLAS is first used, which is why this runs before any model is built.
    - torch.use_deterministic_algorithms(True): an op without a deterministic CUDA kernel raises
      instead of running non-deterministically. Float ``torch.cumsum`` on CUDA is such an op;
      the pure-PyTorch sequence scans use :func:`drama.sequence.ssd.cumsum` instead, which
      switches to a scan of plain additions in this mode.
    - mamba-ssm reads torch.are_deterministic_algorithms_enabled() when it is imported (after
      this) and then uses its deterministic backward reductions and one autotune configuration
      per Triton kernel (as MAMBA_DETERMINISTIC=1 does).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from the run seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
