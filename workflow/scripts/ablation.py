"""Snakemake adapter: an ablation figure (per-game difference in human-normalised score plus
the aggregate differences and P(variant > reference)), e.g. DFS vs uniform sampling."""

import sys

import analysis_path  # noqa: F401 (sys.path: this checkout's analysis/)
from analysis.figures import plot_ablation
from analysis.scores import load_scores

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(sm.log[0], "w")

variant, reference = sm.params.pair
plot_ablation(
    load_scores(sm.input.scores),
    variant,
    reference,
    sm.output.png,
    title=sm.params.title,
    reps=sm.params.reps,
    seed=sm.params.seed,
)
