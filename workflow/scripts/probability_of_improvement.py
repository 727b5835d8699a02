"""Snakemake adapter: P(X > Y) of the first variant (drama) against every other variant and
every published baseline, on the grid's games."""

import sys

import analysis_path  # noqa: F401 (sys.path: this checkout's analysis/)
from analysis.figures import plot_probability_of_improvement
from analysis.scores import load_all, published_path

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(sm.log[0], "w")

df = load_all([sm.input.scores, *(published_path(b) for b in sm.params.baselines)])
df = df[df["game"].isin(sm.params.games)]
first, *others = sm.params.variants
pairs = [(first, other) for other in [*others, *sm.params.baselines]]
plot_probability_of_improvement(df, pairs, sm.output.png, reps=sm.params.reps, seed=sm.params.seed)
