"""Snakemake adapter: the reproduction table and figure, the drama variant's runs against
Drama's published per-game means and aggregates (analysis.reproduction), with the verdicts'
error rates simulated at the grid's runs per game (analysis.verdicts)."""

import sys

import analysis_path  # noqa: F401 (sys.path: this checkout's analysis/)
from analysis import reproduction as R
from analysis.figures import plot_reproduction
from analysis.scores import load_scores, published_path
from analysis.verdicts import Settings

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(sm.log[0], "w")

p = sm.params
settings = Settings.from_config(p.verdict)
df = load_scores(sm.input.scores)
per_game = R.reproduction_per_game(df, p.method, R.load_drama_per_game(), games=p.games,
                                   settings=settings)
aggs = R.reproduction_aggregates(df, p.method, R.load_drama_aggregates(), games=p.games,
                                 reps=p.reps, seed=p.seed, settings=settings)
rates_cfg = p.verdict["rates"]
runs = int(per_game["runs"].min())
rates = None
if runs >= settings.min_runs:
    rates = R.verdict_rates(load_scores(published_path(rates_cfg["method"])), runs, settings,
                            draws=rates_cfg["draws"], aggregate_draws=rates_cfg["aggregate_draws"],
                            seed=p.seed)
source = (f"{rates_cfg['method']}'s published per-run scores (26 games, {rates_cfg['draws']} "
          f"draws per game; aggregates {rates_cfg['aggregate_draws']} draws)")
note = R.write_reproduction_table(per_game, aggs, p.method, p.reps, sm.output.md, sm.output.csv,
                                  sm.output.tex, sm.output.html,
                                  steps=f"{p.steps} environment steps per run",
                                  out_rst=sm.output.rst, settings=settings,
                                  out_aggregates_csv=sm.output.aggregates_csv, rates=rates,
                                  rates_source=source, out_rates_html=sm.output.rates_html,
                                  out_rates_csv=sm.output.rates_csv)
if rates is None:  # one run per game: nothing to simulate, say so in the outputs
    R.write_no_rates(sm.output.rates_html, sm.output.rates_csv, runs, settings)
plot_reproduction(per_game, aggs, sm.output.png, method=p.method)
print(note, file=sys.stderr)
