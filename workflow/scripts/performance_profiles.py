"""Snakemake adapter: performance profiles (rliable score distributions) on the grid's games."""

import sys

import analysis_path  # noqa: F401 (sys.path: this checkout's analysis/)
from analysis.figures import plot_performance_profiles
from analysis.scores import load_all, published_path

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(sm.log[0], "w")

df = load_all([sm.input.scores, *(published_path(b) for b in sm.params.baselines)])
df = df[df["game"].isin(sm.params.games)]
methods = [*sm.params.baselines, *sm.params.variants]
plot_performance_profiles(df, methods, sm.output.png, reps=sm.params.reps, seed=sm.params.seed)
