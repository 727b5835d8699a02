"""Snakemake adapter: the reproduction table and figure, the drama variant's runs against
Drama's published per-game means and aggregates, with the verdicts' error rates simulated at
the grid's runs per game (analysis.reproduction.workflow_reproduction)."""

import sys

import analysis_path  # noqa: F401 (sys.path: this checkout's analysis/)
from analysis import reproduction as R
from analysis.scores import load_scores

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(sm.log[0], "w")

p = sm.params
outputs = {k: sm.output[k] for k in ("md", "csv", "aggregates_csv", "tex", "rst", "html",
                                     "rates_csv", "rates_html", "png")}
note = R.workflow_reproduction(load_scores(sm.input.scores), p.method, p.games, p.reps, p.seed,
                               p.verdict, f"{p.steps} environment steps per run", outputs)
print(note, file=sys.stderr)
