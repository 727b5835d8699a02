"""Snakemake adapter: benchmarks/sequence_speed.py's CSV -> the sequence-length scaling figure
and the benchmark as an HTML table (analysis.figures.plot_sequence_scaling)."""

import sys

import pandas as pd

import analysis_path  # noqa: F401 (sys.path: this checkout's analysis/)
from analysis.figures import plot_sequence_scaling
from analysis.tables import write_html_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(sm.log[0], "w")

bench = pd.read_csv(sm.input.csv)
plot_sequence_scaling(bench, sm.output.png, source=sm.input.csv)
write_html_table(sm.output.html, "Sequence-model benchmark (one layer, fwd+bwd)",
                 list(bench.columns), bench.astype(str).values.tolist(),
                 note=f"From {sm.input.csv}; status other than ok: failed or out of memory.")
