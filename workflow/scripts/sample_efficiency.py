"""Snakemake adapter: sample-efficiency curves (IQM human-normalised score of the periodic
evaluations against environment steps)."""

import sys

import analysis_path  # noqa: F401 (sys.path: this checkout's analysis/)
from analysis.figures import plot_sample_efficiency
from analysis.scores import load_curves

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(sm.log[0], "w")

plot_sample_efficiency(
    load_curves(sm.input.curves, allow_empty=True),  # eval_every >= steps: a figure that says so
    sm.output.png,
    methods=sm.params.variants,
    reps=sm.params.reps,
    seed=sm.params.seed,
)
