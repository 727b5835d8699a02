"""The GPU check's report: ``summary.json`` (every part's status, seconds and numbers) and
``summary.md`` (the same for a person: parts, speeds, runs per GPU, learning per game), built
from the part files that ``benchmarks/gpu_check.sh`` leaves in its work folder.

    python benchmarks/gpu_summary.py env WORK/env.json        # the machine, at the start
    python benchmarks/gpu_summary.py report --out OUT --work WORK --total-s S --budget-s B

``report`` reads WORK/parts.jsonl (one line per part: part, status, rc, seconds, budget_s),
WORK/env.json, WORK/loop_eager.json, WORK/loop_compiled.json, WORK/concurrency.json,
WORK/learning.json and OUT/sequence_speed.csv; any of them may be missing (a part that failed
or timed out), and the report says so instead of failing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd


def machine() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    info = {"torch": torch.__version__, "cuda_available": cuda,
            "cuda_version": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "gpu_memory_gib": (round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
                               if cuda else None),
            "python": platform.python_version(), "cpu_cores": os.cpu_count(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    if shutil.which("nvidia-smi"):
        try:
            info["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                 "--format=csv,noheader"], capture_output=True, text=True,
                timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            info["nvidia_smi"] = f"error: {e}"
    return info


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as e:
        return {"unreadable": f"{path.name}: {e}"}


def build(out: Path, work: Path, total_s: float, budget_s: float) -> dict:
    parts = {}
    if (work / "parts.jsonl").exists():
        for line in (work / "parts.jsonl").read_text().splitlines():
            if line.strip():
                p = json.loads(line)
                parts[p.pop("part")] = p
    for name in ("loop_eager", "loop_compiled", "concurrency", "learning"):
        res = _load(work / f"{name}.json")
        if name in parts or res is not None:
            parts.setdefault(name, {"status": "not run"})["result"] = (
                res if res is not None else "none (the part wrote no result)")
    seq = out / "sequence_speed.csv"
    if seq.exists() and "sequence" in parts:
        parts["sequence"]["rows"] = pd.read_csv(seq).to_dict("records")
    summary = {"total_s": round(total_s), "budget_s": round(budget_s),
               "machine": _load(work / "env.json"), "parts": parts}
    summary["answers"] = answers(parts)
    return summary


def _result(parts: dict, name: str) -> dict | None:
    r = parts.get(name, {}).get("result")
    return r if isinstance(r, dict) and "unreadable" not in r else None


def answers(parts: dict) -> dict:
    """The check's three questions in a few numbers."""
    eager, comp = _result(parts, "loop_eager"), _result(parts, "loop_compiled")
    conc, learn = _result(parts, "concurrency"), _result(parts, "learning")
    speed = {k: (r["env_steps_per_s"] if r else None)
             for k, r in (("eager", eager), ("compiled", comp))}
    syncs = {}
    for k, r in (("eager", eager), ("compiled", comp)):
        h = (r or {}).get("host_syncs")
        if r is None:
            syncs[k] = f"no result (part {parts.get('loop_' + k, {}).get('status', 'not run')})"
        elif h is None:
            syncs[k] = None
        elif not h.get("applicable"):
            syncs[k] = f"not applicable ({h.get('why')})"
        else:
            syncs[k] = {"per_world_model_update": h.get("per_world_model_update"),
                        "per_actor_critic_update": h.get("per_actor_critic_update")}
    rec = (conc or {}).get("recommendation", {})
    games = (learn or {}).get("games", [])
    return {
        "install_and_gpu_tests": parts.get("pytest_gpu", {}).get("status"),
        "train_loop_env_steps_per_s": speed,
        "host_syncs": syncs,
        "runs_per_gpu": rec.get("runs_per_gpu"),
        "runs_per_gpu_rule": rec.get("rule", rec.get("why")),
        "learning_games": [g["game"] for g in games],
        "learning_games_above_random": (learn or {}).get("games_above_random"),
        "learning_steps_reached": {g["game"]: g["env_steps"] for g in games},
    }


# -- markdown -------------------------------------------------------------------------------
def _f(x, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _syncs(v) -> str:
    if v is None or isinstance(v, str):
        return str(v or "-")
    return f"{_f(v['per_world_model_update'])} / {_f(v['per_actor_critic_update'])}"


def _row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def _table(header, rows) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows), ""]


def markdown(s: dict) -> str:
    m = s.get("machine") or {}
    parts, ans = s["parts"], s["answers"]
    where = m.get("gpu") or f"CPU only ({m.get('cpu_cores')} cores)"
    lines = [f"# GPU check: {where}", "",
             f"torch {m.get('torch')} (CUDA {m.get('cuda_version')}), Python {m.get('python')}, "
             f"{m.get('cpu_cores')} CPU cores, {m.get('date_utc')} UTC"
             + (f"; nvidia-smi: {m['nvidia_smi']}" if m.get("nvidia_smi") else "") + ".",
             f"Whole check: {s['total_s']} s (budget {s['budget_s']} s).", ""]
    sp, steps = ans["train_loop_env_steps_per_s"], ans["learning_steps_reached"]
    eager = _result(parts, "loop_eager") or {}
    syncs = "; ".join(f"{k} {_syncs(v)}" for k, v in ans["host_syncs"].items())
    lines += [
        f"- Install and GPU tests (pytest -m gpu): {ans['install_and_gpu_tests']}",
        f"- One run (train-loop benchmark, preset {eager.get('preset', '?')}): "
        f"{_f(sp['eager'])} env steps/s eager, {_f(sp['compiled'])} compiled; host syncs per "
        f"world-model / actor-critic update: {syncs}",
        f"- Runs per GPU: **{ans['runs_per_gpu']}** ({ans['runs_per_gpu_rule']})",
        f"- Learning: {len(steps)} game(s), steps reached "
        + (", ".join(f"{g} {n:,}" for g, n in steps.items()) or "-")
        + "; above random at the last evaluation (z >= 3): "
        + (", ".join(ans["learning_games_above_random"] or []) or "none"), "",
        "## Parts", ""]
    lines += _table(["part", "status", "seconds", "budget (s)"],
                    [[k, v.get("status"), v.get("seconds", "-"), v.get("budget_s", "-")]
                     for k, v in parts.items()])
    # speed
    lines += ["## Speed (one run, train-loop benchmark)", ""]
    rows = []
    for k in ("loop_eager", "loop_compiled"):
        r = _result(parts, k)
        if r is None:
            rows.append([k, parts.get(k, {}).get("status", "not run")] + ["-"] * 8)
            continue
        ms = r["ms_per_step"]
        h = r.get("host_syncs") or {}
        sy = (f"{_f(h.get('per_world_model_update'))} / {_f(h.get('per_actor_critic_update'))}"
              if h.get("applicable") else "n/a (CPU)")
        rows.append([k, _f(r["env_steps_per_s"]), _f(r["warm_s"], 1), _f(ms["wm_update"], 1),
                     _f(ms["imagination"], 1), _f(ms["ac_update"], 1), _f(ms["acting"], 1),
                     _f(ms["env"], 1), _f(ms["other"], 1), sy])
    lines += _table(["loop", "env steps/s", "warm-up s (compile)", "wm update ms",
                     "imagination ms", "ac update ms", "acting ms", "env ms", "other ms",
                     "host syncs per wm / ac update"], rows)
    for k in ("loop_eager", "loop_compiled"):  # where the counted syncs come from
        h = (_result(parts, k) or {}).get("host_syncs") or {}
        per = h.get("per_part") or {}
        found = [f"{part} {v['syncs_per_call']} per call"
                 + (f" ({', '.join(f'{w} x{c}' for w, c in v['where'].items())})"
                    if v.get("where") else "")
                 for part, v in per.items() if v.get("calls")]
        if found:
            lines += [f"Host syncs, {k} ({h.get('counted_steps')} steps counted): "
                      + "; ".join(found) + ".", ""]
    seq = parts.get("sequence", {}).get("rows")
    if seq:
        df = pd.DataFrame(seq)
        if {"kind", "length", "ms_fwd_bwd"} <= set(df.columns):
            piv = df.pivot_table(index="kind", columns="length", values="ms_fwd_bwd",
                                 aggfunc="first")
            lines += ["Sequence model, one layer fwd+bwd (ms; sequence_speed.csv):", ""]
            lines += _table(["kind", *[f"L={c}" for c in piv.columns]],
                            [[k, *[_f(v, 1) for v in r]] for k, r in piv.iterrows()])
    # runs per GPU
    conc = _result(parts, "concurrency")
    lines += ["## Runs per GPU", ""]
    if conc is None:
        lines += [f"Not measured (concurrency part: "
                  f"{parts.get('concurrency', {}).get('status', 'not run')}).", ""]
    else:
        rows = []
        for lv in conc["levels"]:
            if lv["status"] != "measured":
                rows.append([lv["runs"], lv["status"], lv.get("why", "")] + ["-"] * 4)
                continue
            det = lv["runs_detail"]
            mem = [f"{_f(r.get('max_allocated_mib'))}/{_f(r.get('reserved_mib'))}"
                   f"/{_f(r.get('nvidia_smi_mib'))}" for r in det]
            smi = lv.get("nvidia_smi") or {}
            rows.append([lv["runs"], lv.get("threads_per_run"),
                         f"{_f(lv['mean_per_run_env_steps_per_s'])} "
                         f"(min {_f(lv['min_per_run_env_steps_per_s'])})",
                         _f(lv["total_env_steps_per_s"]), ", ".join(mem),
                         f"{_f(smi.get('used_mib'))} / {_f(smi.get('total_mib'))}",
                         _f(smi.get("utilization_pct"))])
        lines += _table(["runs", "torch threads per run", "env steps/s per run: mean (min)",
                         "total env steps/s", "memory per run, MiB: max allocated / reserved /"
                         " nvidia-smi", "device memory used / total, MiB", "GPU util %"], rows)
        rec = conc["recommendation"]
        lines += [f"**Recommended runs_per_gpu: {rec.get('runs_per_gpu')}** "
                  f"({rec.get('rule', rec.get('why'))}). Preset {conc['preset']}, "
                  f"settings {conc['sets']}, window {conc['window_s']} s after "
                  f"{conc['settle_s']} s of settling per level; each run started by "
                  f"{conc.get('pinning')}.", ""]
    # learning
    learn = _result(parts, "learning")
    lines += ["## Learning (seed 0, several games at once)", ""]
    if learn is None:
        lines += [f"No result (learning part: "
                  f"{parts.get('learning', {}).get('status', 'not run')}).", ""]
    else:
        pl = learn["plan"]
        lines += [f"{pl['runs']} concurrent run(s) ({pl['runs_source']}), preset "
                  f"{learn['preset']}, {pl['steps']} steps each ({pl['steps_source']}; speed: "
                  f"{pl['rate_source']}), evaluation every {pl['eval_every']} steps and at the "
                  "end. HNS = (return - random) / (human - random), published random/human "
                  "table. DreamerV3: its published curves (training episodes, mean over seeds) "
                  "at the same agent step.", ""]
        rows = []
        for g in learn["games"]:
            rnd = g["random"]
            rsrc = "measured" if rnd["source"].startswith("measured") else "published"
            for i, c in enumerate(g["curve"]):
                last = i == len(g["curve"]) - 1
                v = g["last_evaluation_vs_random"] if last else None
                se = c.get("return_se")
                ret = (f"{_f(c['return_mean'])} ± {_f(se)} (n={c['episodes']})"
                       if c.get("episodes") else f"{_f(c['return_mean'])}")
                rows.append([g["game"] if i == 0 else "", g["status"] if i == 0 else "",
                             f"{c['env_step']}{' (final)' if c['final'] else ''}", ret,
                             _f(c["hns"], 3),
                             f"{_f(c['dreamerv3_mean'])} ({_f(c['dreamerv3_hns'], 3)})"
                             + (" *" if c.get("dreamerv3_note") else ""),
                             f"{_f(rnd['mean'])} ({rsrc})" if i == 0 else "",
                             f"{v['verdict']} (gap {_f(v['gap'])}, z {_f(v['z'])})"
                             if v else ""])
            if not g["curve"]:
                rows.append([g["game"], g["status"], "-", "no evaluation", "-", "-",
                             f"{_f(rnd['mean'])} ({rsrc})", ""])
        lines += _table(["game", "status", "env step", "return: mean ± SE (n)", "HNS",
                         "DreamerV3 mean (HNS)", "random", "last evaluation vs random"], rows)
        if any(c.get("dreamerv3_note") for g in learn["games"] for c in g["curve"]):
            lines += ["\\* before some DreamerV3 seeds' first recorded episode: their first "
                      "return is used (summary.json has the detail).", ""]
        above = learn.get("games_above_random") or []
        lines += [f"Above random at the steps reached (z >= 3): "
                  f"{', '.join(above) if above else 'none'}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("env")
    e.add_argument("json")
    r = sub.add_parser("report")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--work", type=Path, required=True)
    r.add_argument("--total-s", type=float, required=True)
    r.add_argument("--budget-s", type=float, required=True)
    args = p.parse_args(argv)
    if args.cmd == "env":
        Path(args.json).write_text(json.dumps(machine(), indent=1))
        return 0
    summary = build(args.out, args.work, args.total_s, args.budget_s)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    (args.out / "summary.md").write_text(markdown(summary))
    print(json.dumps({k: v.get("status") for k, v in summary["parts"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
