"""The Snakemake report, built by the real workflow and rendered in real headless Chromium.

The smoke grid's eight runs are written by hand in the trainer's formats (eval.parquet,
run_info.json; the sequence benchmark's CSV too), so Snakemake runs only collect and the
analysis rules (real scripts, real rliable bootstrap) before `--report`. Chromium then loads the
report, and a script injected into a copy of it walks every category and shows every result,
recording what the page displays: the front page must carry the reproduction verdicts, the menu
the numbered categories, every table must open as an HTML table and every figure as an image.

Chromium comes from Debian's `chromium` package (`make test` installs it). Without it the test
skips saying so, except in CI (CI env var set), where a missing browser is a failure.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest

from workflow_copy import copy_workflow, workflow_env

SMOKE = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/smoke.yaml",
         "--workflow-profile", "profiles/cpu"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
CATEGORIES = ["0. Does it learn?", "1. Reproduction", "2. Aggregates", "3. Per game",
              "4. Ablations", "5. Learning curves", "6. Cost", "7. Sequence scaling"]
TABLES = ["reproduction.html", "reproduction_rates.html", "aggregates.html", "per_game.html",
          "costs.html", "sequence_speed.html", "learning.html"]
FIGURES = ["reproduction.png", "aggregates.png", "performance_profiles.png",
           "probability_of_improvement.png", "ablation_dfs.png", "sample_efficiency.png",
           "sequence_scaling.png", "learning_curves.png"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def runs_root(wd: Path) -> Path:
    """The smoke grid's run folder, results/runs/{settings}, as the workflow names it (its
    dry run of `runs` lists the run paths)."""
    proc = subprocess.run([*SMOKE, "-n", "runs"], cwd=wd, env=workflow_env(),
                          capture_output=True, text=True, timeout=300)
    found = re.search(r"results/runs/([^/\s]+)/", proc.stdout + proc.stderr)
    assert proc.returncode == 0 and found, (proc.stdout + proc.stderr)[-3000:]
    return wd / "results/runs" / found.group(1)


def write_hand_made_runs(wd: Path) -> None:
    """The smoke grid's runs (Pong, MsPacman x seeds 0, 1 x drama, uniform) in the trainer's
    output formats, plus the sequence benchmark's CSV."""
    rng = np.random.default_rng(0)
    root = runs_root(wd)
    columns = ["game", "variant", "seed", "env_step", "episode", "return", "length", "final"]
    for game, base in [("Pong", -20.0), ("MsPacman", 300.0)]:
        for variant in ["drama", "uniform"]:
            for seed in [0, 1]:
                run = root / game / variant / f"seed{seed}"
                run.mkdir(parents=True)
                rows = [(game, variant, seed, step, 0, base + rng.normal(0, 1), 800, False)
                        for step in (75, 150)]
                rows += [(game, variant, seed, 160, ep, base + rng.normal(0, 1), 800, True)
                         for ep in range(2)]
                pd.DataFrame(rows, columns=columns).to_parquet(run / "eval.parquet")
                info = {"status": "complete", "game": game, "variant": variant, "preset": "debug",
                        "seed": seed, "env_steps": 160, "steps_target": 160,
                        "wall_time_s": 100.0 + seed, "device": "cpu", "git_commit": "test",
                        "sequence_backend": "torch", "updates": {"world_model": 60}}
                (run / "run_info.json").write_text(json.dumps(info))
                if variant == "drama":  # sampled_episodes: 1 (drama.evaluate_run's output)
                    sampled = wd / f"results/sampled/{game}/drama/seed{seed}.parquet"
                    sampled.parent.mkdir(parents=True, exist_ok=True)
                    pd.DataFrame([(game, variant, seed, 160, 0, base + rng.normal(0, 1), 800,
                                   True, "sampled")], columns=[*columns, "policy"]) \
                        .to_parquet(sampled)
        # random_episodes: 2 (drama.random_policy's output)
        random = wd / f"results/random/{game}.parquet"
        random.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame([(game, "random", 0, 0, ep, base - 1 + rng.normal(0, 1), 700, True)
                      for ep in range(2)], columns=columns).to_parquet(random)
    bench = wd / "results/benchmarks/sequence_speed.csv"
    bench.parent.mkdir(parents=True)
    rows = [{"kind": k, "backend": "torch", "device": "cpu", "batch": 4, "length": n,
             "d_model": 64, "layers": 1, "ms_fwd_bwd": ms * n / 32, "peak_mem_mb": 20 + n / 8,
             "dtype": "float32", "cpu_ms_fwd_bwd": ms * n / 32, "status": "ok"}
            for k, ms in [("mamba2", 3.0), ("gru", 5.0)] for n in (32, 128)]
    pd.DataFrame(rows).to_csv(bench, index=False)


# Injected into a copy of the report: shows every category and every result in turn and
# records what the page displays, in <pre id="walk">, for --dump-dom.
WALK_JS = """
<script>
window.addEventListener("load", function () {
  const log = {front: null, categories: {}, results: {}};
  const steps = [function () { log.front = document.getElementById("app").innerText; }];
  Object.keys(categories).forEach(function (cat) {
    // back to the menu first, as a reader clicks (the result list is built when it mounts)
    steps.push(function () { app.setView({navbarMode: "menu"}); });
    steps.push(function () { app.showCategory(cat); });
    steps.push(function () { log.categories[cat] = document.getElementById("app").innerText; });
  });
  Object.keys(results).forEach(function (path) {
    const r = results[path];
    const kind = r.mime_type === "text/html" ? "html" : "img";
    steps.push(function () {
      app.setView({content: kind, contentPath: r.data_uri, resultPath: path});
    });
    steps.push(function () {
      const el = kind === "html" ? document.querySelector("iframe")
                                 : document.querySelector("img[src^='data:image/png']");
      log.results[path] = {shown: el ? el.tagName : null,
                           width: el && el.naturalWidth !== undefined ? el.naturalWidth : null,
                           src: el ? el.getAttribute("src") : null};
    });
  });
  function next(i) {
    if (i < steps.length) { steps[i](); setTimeout(function () { next(i + 1); }, 100); return; }
    const pre = document.createElement("pre");
    pre.id = "walk";
    pre.textContent = JSON.stringify(log);
    document.body.appendChild(pre);
  }
  setTimeout(function () { next(0); }, 500);
});
</script>
"""


def run_chromium(args: list[str], profile: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=timeout)


def decode_data_uri(uri: str) -> str:
    head, data = uri.split(",", 1)
    return base64.b64decode(data).decode() if head.endswith(";base64") else unquote(data)


@pytest.mark.slow
def test_report_renders_in_chromium_with_every_table_and_figure(tmp_path):
    if chromium() is None:
        why = "chromium is not installed (Debian: apt-get install chromium; `make test` does it)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must render the report, but {why}")
        pytest.skip(why)
    wd = copy_workflow(tmp_path / "wf")
    write_hand_made_runs(wd)
    run = subprocess.run(SMOKE, cwd=wd, env=workflow_env(),
                         capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "rule train:" not in out and "rule sequence_benchmark:" not in out, out[-3000:]
    assert "rule sampled_eval:" not in out and "rule random_policy:" not in out, out[-3000:]
    rep = subprocess.run([*SMOKE, "--report", "results/report.html"], cwd=wd, env=workflow_env(),
                         capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr[-3000:]
    report = wd / "results/report.html"

    # The reproduction table: Pong has no published Drama value, MsPacman's ~300 is far below
    # the published 2270; the 2-game aggregates are not comparable with 26-game ones.
    csv = pd.read_csv(wd / "results/tables/reproduction.csv").set_index("name")
    assert csv.loc["Pong", "verdict"] == "no published value"
    assert csv.loc["MsPacman", "verdict"] == "below" and csv.loc["MsPacman", "published"] == 2270
    assert csv.loc["MsPacman", "diff_high"] < 0
    aggs = pd.read_csv(wd / "results/tables/reproduction_aggregates.csv")
    assert (aggs["verdict"] == "too few games").all()
    # the verdicts' error rates at the grid's 2 runs per game, simulated from SPR's runs
    rates = pd.read_csv(wd / "results/tables/reproduction_rates.csv").set_index("row")
    assert rates.loc["per game", "draws"] == 200 * 26
    assert 0 <= rates.loc["per game", "false_below"] + rates.loc["per game", "false_above"] < 0.1

    # Front page as a browser shows it (and a screenshot of it).
    shot = tmp_path / "report.png"
    r = run_chromium([f"--screenshot={shot}", "--window-size=1400,1000",
                      "--virtual-time-budget=5000", report.as_uri()], tmp_path / "p1")
    assert shot.exists() and shot.stat().st_size > 20_000, r.stderr[-2000:]

    walk_html = tmp_path / "walk.html"
    head, tail = report.read_text().rsplit("</body>", 1)  # the page's own end, not a script's
    walk_html.write_text(head + WALK_JS + "</body>" + tail)
    r = run_chromium(["--dump-dom", "--virtual-time-budget=60000", walk_html.as_uri()],
                     tmp_path / "p2", timeout=300)
    m = re.search(r'<pre id="walk">(.*?)</pre>', r.stdout, re.S)
    assert m, f"the page did not finish the walk: {r.stdout[-2000:]} {r.stderr[-2000:]}"
    import html as html_lib

    log = json.loads(html_lib.unescape(m.group(1)))

    front = log["front"]
    for cat in CATEGORIES:  # the menu lists the numbered categories
        assert cat in front, (cat, front[:3000])
    assert "Drama reproduction report" in front
    assert "MsPacman" in front and "below" in front and "no published value" in front
    assert front.index("1. Reproduction") < front.index("2. Aggregates")
    assert set(log["categories"]) == set(CATEGORIES)
    assert "perfect reproduction called below / above" in front  # the rates by the verdicts
    for cat, stems in {"1. Reproduction": ["reproduction.html", "reproduction.png",
                                           "reproduction_rates.html"],
                       "3. Per game": ["per_game.html"], "6. Cost": ["costs.html"],
                       "4. Ablations": ["ablation_dfs.png"]}.items():
        for stem in stems:
            assert stem in log["categories"][cat], (cat, stem, log["categories"][cat][:2000])

    names = {Path(p).name: v for p, v in log["results"].items()}
    assert set(TABLES + FIGURES) <= set(names), sorted(names)
    for name in TABLES:
        assert names[name]["shown"] == "IFRAME", name
        page = decode_data_uri(names[name]["src"])
        assert "<table>" in page and page.count("<tr") >= 2, (name, page[:500])
    for name in FIGURES:
        assert names[name]["shown"] == "IMG" and names[name]["width"] > 300, (name, names[name])
    reproduction = decode_data_uri(names["reproduction.html"]["src"])
    assert "v-below" in reproduction and "Pong" in reproduction

    # Captions carry the numbers: runs per game, bootstrap reps, steps.
    text = report.read_text()
    assert "2 run(s) per game" in text and "2000 reps" in text and "160 environment steps" in text
    assert "our runs' spread as the estimate of" in text and "99.0% t interval" in text
