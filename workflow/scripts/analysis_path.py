"""Imported first by every adapter: puts this checkout's root (two levels above this folder)
first on sys.path, so the adapters use its analysis/ package, also inside the analysis conda
env (workflow/envs/analysis.yaml), which does not install the project. Snakemake puts this
folder on the adapters' sys.path."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if (ROOT / "analysis").is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
