"""Snakemake adapter: the reproduction table and figure, the drama variant's runs against
Drama's published per-game means and aggregates (analysis.reproduction)."""

import sys

import analysis_path  # noqa: F401 (sys.path: this checkout's analysis/)
from analysis import reproduction as R
from analysis.figures import plot_reproduction
from analysis.scores import load_scores

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(sm.log[0], "w")

p = sm.params
df = load_scores(sm.input.scores)
per_game = R.reproduction_per_game(df, p.method, R.load_drama_per_game(), games=p.games,
                                   reps=p.reps, seed=p.seed)
aggs = R.reproduction_aggregates(df, p.method, R.load_drama_aggregates(), games=p.games,
                                 reps=p.reps, seed=p.seed)
note = R.write_reproduction_table(per_game, aggs, p.method, p.reps, sm.output.md, sm.output.csv,
                                  sm.output.tex, sm.output.html,
                                  steps=f"{p.steps} environment steps per run",
                                  out_rst=sm.output.rst)
plot_reproduction(per_game, aggs, sm.output.png, method=p.method)
print(note, file=sys.stderr)
