#!/usr/bin/env bash
# One-command GPU check (issue 13): from a bare machine with a CUDA torch, in <= 9 minutes.
#
#   bash benchmarks/gpu_check.sh OUT_DIR
#
# Before (on a machine with network, once): fill the ignored folder .whl/ with the wheels the
# GPU image lacks (gymnasium, ale-py, mamba-ssm, ...; helper script by issue 14):
#   scripts/gpu_wheels.sh .whl
# and carry .whl with the repository (the device tool: carry [".whl"]).
#
# Parts, each under its own `timeout` so that a slow part cannot starve the rest (seconds,
# overridable by the environment variable in brackets):
#   wheels        pip install --no-index .whl/*.whl --target /tmp/site    [GPU_CHECK_T_WHEELS 60]
#   pytest_gpu    pytest -m gpu                                           [GPU_CHECK_T_PYTEST 120]
#   sequence      benchmarks/sequence_speed.py at the paper's lengths     [GPU_CHECK_T_SEQ 75]
#   loop_eager    benchmarks/train_loop.py, paper preset, compile off     [GPU_CHECK_T_EAGER 60]
#   loop_compiled the same with train.compile=on (compile time = warm_s)  [GPU_CHECK_T_COMPILED 150]
#   run           python -m drama.train, paper preset, Boxing, for the steps the measured speed
#                 allows in the time left before GPU_CHECK_TOTAL (default 530 s from the start),
#                 with a small learning curve (eval every quarter of the steps)
# Output in OUT_DIR (at most 8 files, flat, as the device tool returns them): summary.json (all
# parts: status, seconds, numbers), eval_curve.csv, log.txt, pytest_gpu.txt, sequence_speed.csv,
# loop_eager.json, loop_compiled.json, run_info.json.
#
# CPU smoke test (tests/test_gpu_check.py): GPU_CHECK_DEVICE=cpu GPU_CHECK_PRESET=debug with
# tiny budgets runs every part end to end on the CPU.
set -u
OUT=${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
PRESET=${GPU_CHECK_PRESET:-atari100k}
GAME=${GPU_CHECK_GAME:-Boxing}
TOTAL=${GPU_CHECK_TOTAL:-530}
T_WHEELS=${GPU_CHECK_T_WHEELS:-60}
T_PYTEST=${GPU_CHECK_T_PYTEST:-120}
T_SEQ=${GPU_CHECK_T_SEQ:-75}
T_EAGER=${GPU_CHECK_T_EAGER:-60}
T_COMPILED=${GPU_CHECK_T_COMPILED:-150}
SEQ_LENGTHS=${GPU_CHECK_SEQ_LENGTHS:-64 128 1024 4096 16384}
LOOP_MEASURE=${GPU_CHECK_LOOP_MEASURE:-20}
RUN_STEPS=${GPU_CHECK_RUN_STEPS:-}        # force the run's length (default: from the speed)
RUN_DIR=${GPU_CHECK_RUN_DIR:-/tmp/gpu_check_run}
export PYTHONUNBUFFERED=1 MAMBA_DETERMINISTIC=1
LOG="$OUT/log.txt"
PARTS="$OUT/.parts.jsonl"
: >"$LOG"
: >"$PARTS"
START=$(date +%s)

elapsed() { echo $(($(date +%s) - START)); }
say() { echo "[gpu_check $(elapsed)s] $*" | tee -a "$LOG"; }
# part NAME BUDGET_S CMD...: run CMD under timeout, log it, record status and seconds
part() {
    local name=$1 budget=$2 t0 rc status
    shift 2
    t0=$(date +%s)
    say "== $name (budget ${budget}s): $*"
    timeout --kill-after=10 "$budget" "$@" >>"$LOG" 2>&1
    rc=$?
    case $rc in 0) status=ok ;; 124 | 137) status=timeout ;; *) status=failed ;; esac
    say "== $name: $status (rc $rc) in $(($(date +%s) - t0))s"
    printf '{"part": "%s", "status": "%s", "rc": %d, "seconds": %d, "budget_s": %d}\n' \
        "$name" "$status" "$rc" "$(($(date +%s) - t0))" "$budget" >>"$PARTS"
    return $rc
}

say "start: device $DEVICE, preset $PRESET, game $GAME, total budget ${TOTAL}s, out $OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    part wheels "$T_WHEELS" "$PY" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
else
    say "no .whl/*.whl: installing nothing (fill it with: scripts/gpu_wheels.sh .whl)"
    printf '{"part": "wheels", "status": "skipped", "rc": 0, "seconds": 0, "budget_s": 0}\n' \
        >>"$PARTS"
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
    torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', 'python', sys.version)" \
    >>"$LOG" 2>&1

part pytest_gpu "$T_PYTEST" bash -c "'$PY' -m pytest -m gpu -q -p no:cacheprovider tests \
    >'$OUT/pytest_gpu.txt' 2>&1; rc=\$?; tail -n 15 '$OUT/pytest_gpu.txt'; \
    [ \$rc -eq 5 ] && exit 0; exit \$rc"   # 5: nothing collected (CPU smoke run)

# shellcheck disable=SC2086
part sequence "$T_SEQ" "$PY" benchmarks/sequence_speed.py --device "$DEVICE" \
    --lengths $SEQ_LENGTHS --kinds mamba2 transformer gru --csv "$OUT/sequence_speed.csv"

loop() {  # loop NAME BUDGET COMPILE
    part "$1" "$2" bash -c "set -o pipefail; '$PY' benchmarks/train_loop.py --preset '$PRESET' --game '$GAME' \
        --device '$DEVICE' --warm 3 --measure '$LOOP_MEASURE' --set train.compile=$3 \
        | tail -n 1 >'$OUT/$1.json'"
}
loop loop_eager "$T_EAGER" off
loop loop_compiled "$T_COMPILED" on

# The run: as many steps as the measured speed allows in the time left.
read -r RUN_COMPILE STEPS < <("$PY" - "$OUT" "$TOTAL" "$(elapsed)" "${RUN_STEPS:-0}" <<'EOF'
import json, sys
from pathlib import Path
out, total, now, forced = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
def load(name):
    try:
        return json.loads((out / f"{name}.json").read_text())
    except Exception:
        return None
c, e = load("loop_compiled"), load("loop_eager")
best = c if c else e
compile_ = "on" if c else "off"
rate = best["env_steps_per_s"] if best else 1.0
# startup, the random warm-up fill, compilation (as measured) and the evaluations
overhead = 30 + (best["warmup_fill_s"] if best else 60) + (c["warm_s"] if c else 0) + 45
steps = int(1032 + max(0.0, total - now - overhead) * rate * 0.85)
print(compile_, forced if forced > 0 else max(1100, min(100_000, steps)))
EOF
)
EVAL_EVERY=$(((STEPS + 3) / 4))
RUN_BUDGET=$((TOTAL - $(elapsed)))
[ "$RUN_BUDGET" -lt 30 ] && RUN_BUDGET=30
rm -rf "$RUN_DIR"
part run "$RUN_BUDGET" "$PY" -m drama.train --game "$GAME" --seed 0 --variant drama \
    --preset "$PRESET" --device "$DEVICE" --steps "$STEPS" --out "$RUN_DIR" \
    --set train.compile="$RUN_COMPILE" --set train.eval_every="$EVAL_EVERY" \
    --set train.eval_episodes=3 --set train.eval_batch=5 --set train.final_eval_episodes=5 \
    --set train.log_every=250 --set train.checkpoint_every="$STEPS"

"$PY" - "$OUT" "$RUN_DIR" "$STEPS" "$RUN_COMPILE" "$(elapsed)" <<'EOF' >>"$LOG" 2>&1
import json, sys
from pathlib import Path
import pandas as pd
out, run, steps, compile_, total_s = Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:]
parts = [json.loads(line) for line in (out / ".parts.jsonl").read_text().splitlines()]
summary = {"total_s": int(total_s), "parts": {p.pop("part"): p for p in parts}}
for name in ("loop_eager", "loop_compiled"):
    try:
        summary["parts"][name]["result"] = json.loads((out / f"{name}.json").read_text())
    except Exception as e:
        summary["parts"].setdefault(name, {})["result"] = f"none ({e})"
seq = out / "sequence_speed.csv"
if seq.exists():
    summary["parts"]["sequence"]["rows"] = pd.read_csv(seq).to_dict("records")
run_part = summary["parts"].get("run", {})
run_part.update(steps_target=int(steps), compile=compile_)
if (run / "run_info.json").exists():
    info = json.loads((run / "run_info.json").read_text())
    (out / "run_info.json").write_text(json.dumps(info, indent=1))
    run_part.update(status_in_run=info.get("status"), env_steps=info.get("env_steps"),
                    score=info.get("score"), wall_time_s=info.get("wall_time_s"))
metrics = []
if (run / "metrics.jsonl").exists():
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
               if line.strip()]
sps = [m["perf/env_steps_per_s"] for m in metrics if "perf/env_steps_per_s" in m]
run_part["env_steps_per_s_last_windows"] = sps[-4:]
if (run / "eval.parquet").exists():
    curve = pd.read_parquet(run / "eval.parquet")
    curve = curve.groupby(["env_step", "final"], as_index=False)["return"].agg(["mean", "std",
                                                                                 "count"])
else:  # killed before the end: the evaluations logged so far
    curve = pd.DataFrame([{"env_step": m["step"], "final": False,
                           "mean": m["eval/return_mean"], "std": m.get("eval/return_std")}
                          for m in metrics if "eval/return_mean" in m],
                         columns=["env_step", "final", "mean", "std"])
curve.to_csv(out / "eval_curve.csv", index=False)
run_part["eval_curve"] = curve.to_dict("records")
(out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk in ("status", "seconds")}
                  for k, v in summary["parts"].items()}))
EOF
rm -f "$PARTS"
say "done in $(elapsed)s: $OUT/summary.json"
