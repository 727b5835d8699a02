"""Checkpoint files: one self-checking file holding the whole training state.

Layout: ``MAGIC`` line, the sha256 of the payload, a newline, then the ``torch.save`` payload.
Writing goes through :func:`drama.run_io.atomic_write_bytes`, so a checkpoint is either the
previous complete one or the new complete one. Reading verifies magic and hash and raises
:class:`CheckpointError` naming the file and the problem: a damaged checkpoint is never
silently replaced by a fresh start.

RNG helpers capture and restore Python's, NumPy's and torch's (CPU and CUDA) global streams.
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
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from the run seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
