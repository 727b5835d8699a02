"""The reproduction table (``analysis.reproduction``'s verdicts) as Markdown, CSV, LaTeX, HTML
and the report's reStructuredText front page, and its note saying how the verdicts are made."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import verdicts as V
from analysis.reproduction import VERDICTS, verdict_counts
from analysis.tables import md_row, mkparent, tex_escape, write_html_table
from analysis.verdicts import Settings


def _num(x: float, digits: int) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:,.{digits}f}"


def _ci(lo: float, hi: float, digits: int) -> str:
    return "—" if not np.isfinite(lo) else f"[{_num(lo, digits)}, {_num(hi, digits)}]"


def _diff(d: float, lo: float, hi: float, digits: int) -> str:
    if not np.isfinite(d):
        return "—"
    return f"{d:+,.{digits}f} {_ci(lo, hi, digits)}"


def reproduction_rows(per_game: pd.DataFrame, aggs: pd.DataFrame) -> tuple[list, list, int]:
    """(header, rows, index of the last per-game row) of the readable reproduction table."""
    header = ["Game", "Runs", "Our mean", "Published (runs)", "Ours − published [interval]",
              "Margin ±", "Verdict", "Source", "Status"]
    rows = [[r.game, str(r.runs), _num(r.mean, 1),
             _num(r.published, 1) + (f" ({r.published_runs:.0f})"
                                     if np.isfinite(r.published) else ""),
             _diff(r.diff, r.diff_low, r.diff_high, 1), _num(r.margin, 1), r.verdict,
             r.source or "—", r.status]
            for r in per_game.itertuples(index=False)]
    for r in aggs.itertuples(index=False):
        d = 0 if r.metric == "superhuman_games" else 3
        rows.append([f"{r.label} ({r.games} games)", str(r.runs),
                     f"{_num(r.value, d)} {_ci(r.ci_low, r.ci_high, d)}", _num(r.published, d),
                     _diff(r.diff, r.diff_low, r.diff_high, d), _num(r.margin, d if d else 0),
                     r.verdict, r.source or "—", r.status])
    return header, rows, len(per_game) - 1


def rates_rows(rates: pd.DataFrame) -> tuple[list, list]:
    """(header, rows) of the verdict-rates table (percentages)."""
    shifts = [c for c in rates.columns if c.startswith("power_")]
    header = ["Simulated", "Draws", "False below", "False above", "Inconclusive", "Reproduced",
              *(f"Power, {c.split('_')[1]} lower" for c in shifts)]
    rows = [[r["row"], str(int(r["draws"])),
             *(f"{100 * r[c]:.1f}%" for c in ["false_below", "false_above", "inconclusive",
                                              "reproduced", *shifts])]
            for r in rates.to_dict("records")]
    return header, rows


def method_note(settings: Settings, means_only: bool = True) -> str:
    """How the verdicts are made, for table notes and captions."""
    s = settings
    spread = (f"the published mean's standard error assumes {s.published_runs} runs and, as "
              "no per-run published scores exist, our runs' spread for theirs" if means_only
              else "the published means' standard errors come from their own runs")
    return (f"Verdict from the interval of ours − published: a t interval "
            f"({100 * s.level_means_only:g}% with published means only, "
            f"{100 * s.level:g}% Welch with published runs); {spread}. Reproduced = the "
            f"interval lies within ±margin (max of {s.margin_hns:g} x (human − random) and "
            f"{s.margin_relative:g} x the published value; games >= human: ±"
            f"{s.margin_games:g}); below/above = it excludes zero on that side; inconclusive "
            f"= neither. Aggregates: basic-bootstrap interval of the difference "
            f"({100 * s.level_aggregates:g}%), stratified over games.")


def write_reproduction_table(per_game: pd.DataFrame, aggs: pd.DataFrame, method: str,
                             reps: int, out_md: str | Path, out_csv: str | Path,
                             out_tex: str | Path, out_html: str | Path | None = None,
                             steps: str = "", out_rst: str | Path | None = None,
                             settings: Settings = V.DEFAULTS,
                             out_aggregates_csv: str | Path | None = None,
                             rates: pd.DataFrame | None = None, rates_source: str = "",
                             out_rates_html: str | Path | None = None,
                             out_rates_csv: str | Path | None = None) -> str:
    """Write the reproduction table (Markdown, CSV, LaTeX, optional HTML and reStructuredText,
    the latter for the report's front page); return its note.

    CSV: one row per game with raw numbers and the verdict; the aggregates go to
    ``out_aggregates_csv`` (default: ``<out_csv stem>_aggregates.csv``). ``rates``
    (``verdict_rates``): how often each verdict is right at the grid's runs, shown after the
    verdicts (and as their own HTML/CSV table when the paths are given).
    """
    header, rows, last_game = reproduction_rows(per_game, aggs)
    counts = verdict_counts(per_game)
    runs = sorted(set(per_game["runs"]))
    means_only = not (per_game["published_spread"] == "published runs").any()
    note = (f"Method {method!r}; runs per game: {'/'.join(map(str, runs))}"
            f"{'; ' + steps if steps else ''}. Our mean over runs (aggregates: with the "
            f"95% stratified-bootstrap CI, {reps} reps, human-normalised). "
            + method_note(settings, means_only) + " Per game: "
            + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".")
    rate_lines = []
    if rates is not None:
        r_header, r_rows = rates_rows(rates)
        rate_lines = [f"How often these verdicts are right at {'/'.join(map(str, runs))} "
                      f"run(s) against {settings.published_runs} published: simulated on "
                      f"{rates_source} (a perfect reproduction: false below/above, "
                      f"inconclusive, reproduced; a worse one: power to call it below).",
                      "", md_row(r_header), md_row(["---"] + ["---:"] * (len(r_header) - 1)),
                      *(md_row(r) for r in r_rows)]
    flat_games = per_game.assign(kind="game", name=per_game["game"], value=per_game["mean"],
                                 games=1)
    cols = ["kind", "name", "games", "runs", "value", "sd", "ci_low", "ci_high", "published",
            "published_runs", "published_spread", "diff", "diff_low", "diff_high", "margin",
            "hns_diff", "hns_diff_low", "hns_diff_high", "hns_margin", "source", "status",
            "verdict"]
    mkparent(out_csv)
    flat_games[cols].to_csv(out_csv, index=False, float_format="%.6g")
    out_aggregates_csv = (Path(out_csv).with_name(Path(out_csv).stem + "_aggregates.csv")
                          if out_aggregates_csv is None else out_aggregates_csv)
    agg_cols = ["kind", "name", "games", "runs", "value", "ci_low", "ci_high", "published",
                "diff", "diff_low", "diff_high", "margin", "source", "status", "verdict"]
    mkparent(out_aggregates_csv)
    aggs.assign(kind="aggregate", name=aggs["metric"])[agg_cols].to_csv(
        out_aggregates_csv, index=False, float_format="%.6g")
    md = [md_row(header), md_row(["---", "---:", "---:", "---:", "---:", "---:", "---", "---",
                                    "---"])]
    md += [md_row(r) for r in rows]
    mkparent(out_md)
    Path(out_md).write_text("\n".join(md) + f"\n\n{note}\n"
                            + ("\n" + "\n".join(rate_lines) + "\n" if rate_lines else ""))
    body = [" & ".join(tex_escape(c) for c in header) + r" \\", r"\midrule"]
    for i, r in enumerate(rows):
        body.append(" & ".join(tex_escape(c.replace(">=", r"$\geq$")) for c in r) + r" \\")
        if i == last_game:
            body.append(r"\midrule")
    tex = "\n".join([r"\begin{tabular}{lrrrrrlp{5cm}l}", r"\toprule", *body, r"\bottomrule",
                     r"\end{tabular}"])
    mkparent(out_tex)
    Path(out_tex).write_text(f"% {note}\n% needs \\usepackage{{booktabs}}\n{tex}\n")
    if out_rst is not None:
        mkparent(out_rst)
        Path(out_rst).write_text(_rst_summary(per_game, aggs, rates))
    if out_html is not None:
        write_html_table(out_html, f"Reproduction: {method} against the published results",
                         header, rows, note=note, rules_after=[last_game],
                         verdict_column="Verdict")
    if rates is not None and out_rates_html is not None:
        write_html_table(out_rates_html, f"How often a verdict is right at "
                         f"{'/'.join(map(str, runs))} run(s)", *rates_rows(rates),
                         note=rate_lines[0])
    if rates is not None and out_rates_csv is not None:
        mkparent(out_rates_csv)
        rates.to_csv(out_rates_csv, index=False, float_format="%.4f")
    return note


def _rst_summary(per_game: pd.DataFrame, aggs: pd.DataFrame,
                 rates: pd.DataFrame | None = None) -> str:
    """The report's front page: games per verdict, then the aggregates, then (when given) how
    often such verdicts are right, as short reStructuredText list-tables (narrow enough for the
    report's description column)."""
    def cell(c: str) -> str:
        return (c.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`")
                .replace("|", "\\|").replace("_", "\\_")) or ".."

    def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
        lines = [".. list-table::", "   :header-rows: 1", ""]
        for r in [header, *rows]:
            lines.append("   * - " + cell(str(r[0])))
            lines += [f"     - {cell(str(c))}" for c in r[1:]]
        return [*lines, ""]

    by_verdict = [[v, ", ".join(per_game.loc[per_game["verdict"] == v, "game"])]
                  for v in VERDICTS if (per_game["verdict"] == v).any()]
    out = table([f"Verdict ({len(per_game)} games)", "Games"], by_verdict)
    rows = []
    for r in aggs.itertuples(index=False):
        d = 0 if r.metric == "superhuman_games" else 3
        rows.append([r.label, f"{_num(r.value, d)} {_ci(r.ci_low, r.ci_high, d)}",
                     _num(r.published, d), r.verdict])
    out += table([f"Aggregate ({int(aggs['games'].iloc[0])} games)", "Ours [95% CI]",
                  "Published", "Verdict"], rows)
    if rates is not None:
        g = rates.iloc[0]
        shifts = [c for c in rates.columns if c.startswith("power_")]
        out += table(["What a per-game verdict means (simulated)", "Rate"], [
            ["perfect reproduction called below / above",
             f"{100 * g['false_below']:.1f}% / {100 * g['false_above']:.1f}%"],
            ["perfect reproduction inconclusive / reproduced",
             f"{100 * g['inconclusive']:.1f}% / {100 * g['reproduced']:.1f}%"],
            *([f"called below when {c.split('_')[1]} HNS worse", f"{100 * g[c]:.1f}%"]
              for c in shifts)])
    return "\n".join(out)


def write_no_rates(out_html: str | Path, out_csv: str | Path, runs: int,
                   settings: Settings = V.DEFAULTS) -> None:
    """The rates outputs of a grid with fewer than ``min_runs`` runs per game: nothing to
    simulate (every verdict is "too few runs"), said in both files."""
    why = (f"{runs} run(s) per game: fewer than {settings.min_runs}, so every verdict is "
           f"'too few runs' and there are no error rates to show.")
    write_html_table(out_html, "How often a verdict is right", ["Simulated", "Note"],
                     [["per game", why]])
    mkparent(out_csv)
    pd.DataFrame(columns=["row", "draws", *V.RATE_COLUMNS]).to_csv(out_csv, index=False)
