"""Snakemake adapter: rliable aggregates (mean, median, IQM, optimality gap, 95% CIs) of the
variants and the published baselines on the grid's games -> table, JSON and interval plot."""

import sys

import analysis_path  # noqa: F401 (sys.path: this checkout's analysis/)
from analysis.aggregates import aggregate
from analysis.figures import plot_aggregate_intervals
from analysis.scores import load_all, published_path
from analysis.tables import write_aggregate_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(sm.log[0], "w")

methods = [*sm.params.baselines, *sm.params.variants]
df = load_all([sm.input.scores, *(published_path(b) for b in sm.params.baselines)])
# Every method on the same games (the grid's), so the intervals are comparable.
agg = aggregate(
    df, methods=methods, games=sm.params.games, reps=sm.params.reps, seed=sm.params.seed
)
note = (f"Human-normalised scores on {len(sm.params.games)} game(s), {sm.params.runs} runs per "
        f"game for the variants ({sm.params.steps} environment steps each); 95% stratified-"
        f"bootstrap CIs, {sm.params.reps} reps, seed {sm.params.seed}.")
write_aggregate_table(agg, out_md=sm.output.md, out_json=sm.output.json,
                      out_html=sm.output.html, note=note)
plot_aggregate_intervals(agg, sm.output.png, methods=methods)
