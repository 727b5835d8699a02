"""Snakemake adapter: every run's eval.parquet + run_info.json -> scores.parquet, curves.parquet
(analysis.collect)."""

import sys

import analysis_path  # noqa: F401 (sys.path: this checkout's analysis/)
from analysis.collect import write_collected

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(sm.log[0], "w")

n = write_collected(sm.input.evals, sm.output.scores, sm.output.curves, infos=sm.input.infos)
print(f"collected {n} runs", file=sys.stderr)
