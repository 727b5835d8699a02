"""Snakemake adapter: agent vs random policy, table and learning curves (analysis.learning)."""

import sys

import analysis_path  # noqa: F401 (sys.path: this checkout's analysis/)
from analysis.learning import (
    learning_frame,
    load_episodes,
    plot_learning_curves,
    write_learning_table,
)

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(sm.log[0], "w")

agent = load_episodes(sm.input.evals)
random = load_episodes(sm.input.random)
sampled = load_episodes(sm.input.sampled) if sm.input.sampled else None  # sampled_episodes 0
frame = learning_frame(agent, random, variant=sm.params.variant, games=sm.params.games,
                       sampled=sampled)
write_learning_table(frame, sm.output.md, sm.output.csv, sm.output.html, steps=sm.params.steps)
plot_learning_curves(agent, random, sm.output.png, variant=sm.params.variant,
                     games=sm.params.games, sampled=sampled)
print(frame.drop(columns=["seed_scores"]).to_string(), file=sys.stderr)
