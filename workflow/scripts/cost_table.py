"""Snakemake adapter: the cost table (wall time and GPU-hours per run by variant) from the
run_info.json fields that collect_runs.py copied into scores.parquet."""

import sys

import pandas as pd

import analysis_path  # noqa: F401 (sys.path: this checkout's analysis/)
from analysis.tables import write_cost_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(sm.log[0], "w")

write_cost_table(pd.read_parquet(sm.input.scores), sm.output.md, sm.output.csv,
                 out_html=sm.output.html)
