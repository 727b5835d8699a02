"""Run-directory outputs: atomic writes, ``metrics.jsonl`` and the provenance in ``run_info.json``.

Every file a reader may look at (config.yaml, run_info.json, eval.parquet, checkpoints) is
written to a temporary file in the same directory, fsynced and renamed over the target, so a
crash never leaves a half-written file visible. Files get the mode the user's umask gives a new
file (``mkstemp`` alone would make them 0600, unreadable to collaborators on a shared cluster).
``metrics.jsonl`` is append-only; on resume it is truncated back to the byte offset recorded in
the checkpoint, so rows from the killed process's unsaved tail are not duplicated.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

EVAL_COLUMNS = ["game", "variant", "seed", "env_step", "episode", "return", "length", "final"]
"""Columns of a run's eval.parquet, one row per evaluation episode (drama.run.episode_row);
also of drama.random_policy's and drama.evaluate_run's tables (the latter adds ``policy``)."""
EVAL_DTYPES = {"seed": "int64", "env_step": "int64", "episode": "int64", "return": "float64",
               "length": "int64", "final": "bool"}

_PACKAGES = ("torch", "numpy", "gymnasium", "ale-py", "opencv-python-headless", "pandas",
             "pyarrow", "pyyaml", "mamba-ssm", "causal-conv1d", "drama-repro")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file + fsync + rename (mode 0666 & ~umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_yaml(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False))


def atomic_write_parquet(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as parquet, atomically."""
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


class MetricsWriter:
    """Appends one JSON object per line to ``metrics.jsonl`` (slash-namespaced keys + ``step``).

    ``sink``: an optional second writer of the same rows (``sink.scalars(step, row)``), e.g.
    drama.tensorboard.TensorBoardSink; None (the default) costs nothing."""

    def __init__(self, path: str | os.PathLike, sink: Any = None):
        self.path = Path(path)
        self.sink = sink
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the run

    def offset(self) -> int:
        """Bytes written so far (recorded in checkpoints)."""
        self._file.flush()
        return self._file.tell()

    def truncate(self, offset: int) -> None:
        """Drop everything after ``offset`` (rows written after the checkpoint we resume from)."""
        self._file.flush()
        size = self.path.stat().st_size
        if offset > size:
            raise RuntimeError(f"{self.path} is shorter ({size} bytes) than the checkpoint "
                               f"records ({offset} bytes): the run directory was modified")
        self._file.truncate(offset)
        self._file.seek(offset)

    def write(self, step: int, values: dict[str, float]) -> None:
        row = {"step": int(step)}
        for key, val in values.items():
            val = float(val)
            row[key] = val if math.isfinite(val) else str(val)  # JSON has no NaN/Inf
        self._file.write((json.dumps(row) + "\n").encode())
        self._file.flush()
        if self.sink is not None:
            self.sink.scalars(step, values)

    def close(self) -> None:
        self._file.close()
        if self.sink is not None:
            self.sink.close()


def read_metrics(path: str | os.PathLike) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def git_commit() -> str:
    """The commit of the package's git checkout (+ '-dirty' if modified), or 'unknown'."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout
        return commit + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment_info(device) -> dict[str, Any]:
    """Provenance of the software and hardware a run used."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        device_name = torch.cuda.get_device_name(dev)
    else:
        device_name = platform.processor() or platform.machine()
    return {
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "device": str(dev),
        "device_name": device_name,
        "torch_threads": torch.get_num_threads(),
        "hostname": platform.node(),
    }
