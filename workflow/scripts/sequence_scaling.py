"""Snakemake adapter: benchmarks/sequence_speed.py's CSV -> the sequence-length scaling figure
(fwd+bwd time and peak memory of one layer against L, log-log, one line per kind/backend)."""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.figures import method_colors, save_figure  # noqa: E402

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = open(sm.log[0], "w")

df = pd.read_csv(sm.input.csv)
ok = df[df["status"] == "ok"]
if ok.empty:
    raise ValueError(f"{sm.input.csv}: no successful measurement (status column: {set(df.status)})")
ok = ok.assign(label=ok["kind"] + " (" + ok["backend"] + ")")
labels = list(dict.fromkeys(ok["label"]))
colors = method_colors(labels)
first = ok.iloc[0]
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, col, ylabel in [
    (axes[0], "ms_fwd_bwd", "fwd+bwd time (ms)"),
    (axes[1], "peak_mem_mb", "peak memory (MB)"),
]:
    for label in labels:
        sub = ok[ok["label"] == label].sort_values("length")
        ax.plot(sub["length"], sub[col], "o-", color=colors[label], label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
axes[0].legend(fontsize="small")
fig.suptitle(
    f"One sequence layer, B={first['batch']}, d={first['d_model']}, {first['dtype']}, "
    f"device {first['device']} (failed/OOM points omitted)"
)
fig.tight_layout()
save_figure(fig, sm.output.png)
