"""Copy the workflow (not results/) into a scratch directory for real Snakemake runs in tests."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a run of the workflow reads from the repository; drama/ and analysis/ are imported from
# the installed (editable) package.
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "profiles", "environment.yml",
                  "drama/presets.yaml",
                  "benchmarks/sequence_speed.py", "scripts/gpu_pin.sh"]


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow files into ``dest`` (plus the ./slurm profile link); return ``dest``."""
    for name in WORKFLOW_FILES:
        src, dst = ROOT / name, dest / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    (dest / "slurm").symlink_to("profiles/slurm")
    return dest


def workflow_env() -> dict[str, str]:
    """The environment for a Snakemake subprocess: this interpreter's bin/ first on PATH, since
    the rules call `python` from PATH (as under `make smoke`/`make test`)."""
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
