#!/usr/bin/env bash
# One-command GPU check: from a bare machine with a CUDA torch, in <= 9 minutes, it answers
# whether the install works, how fast a paper-preset run is, how many runs fit on the GPU, and
# whether the agent learns.
#
#   bash benchmarks/gpu_check.sh OUT_DIR
#
# Before (on a machine with network, once): fill the ignored folder .whl/ with the wheels the
# GPU machine lacks (gymnasium, ale-py, mamba-ssm, ...):
#   scripts/gpu_wheels.sh .whl
# and take .whl along with the repository.
#
# Parts, each under its own `timeout` so that a slow part cannot starve the rest (seconds,
# overridable by the environment variable in brackets):
#   wheels        pip install --no-index .whl/*.whl --target /tmp/site    [GPU_CHECK_T_WHEELS 60]
#   pytest_gpu    pytest -m gpu: kernel parity (tests/test_sequence_gpu.py) [GPU_CHECK_T_PYTEST 130]
#                 and the official-release parity of the world model on CUDA with mamba-ssm's
#                 kernels, fp32, TF32 off (tests/test_official_parity.py)
#   sequence      benchmarks/sequence_speed.py at the paper's lengths     [GPU_CHECK_T_SEQ 60]
#   loop_eager    benchmarks/train_loop.py, paper preset, compile off,    [GPU_CHECK_T_EAGER 60]
#                 with the host-device syncs per update counted (CUDA)
#   loop_compiled the same with train.compile=on (compile time = warm_s)  [GPU_CHECK_T_COMPILED 120]
#   concurrency   benchmarks/gpu_concurrency.py: 1, 2, 4, 8 concurrent    [GPU_CHECK_T_CONC 150]
#                 paper-preset runs (one game each, pinned by scripts/gpu_pin.sh), env steps/s
#                 and memory per run, the recommended runs_per_gpu
#   learning      benchmarks/gpu_learning.py: that many games at once (Boxing, Krull, Assault,
#                 Gopher, CrazyClimber, KungFuMaster, UpNDown, Pong), seed 0, paper preset, for
#                 the steps the measured speed allows in the time left before GPU_CHECK_TOTAL
#                 (default 530 s from the start), an evaluation every quarter and at the end,
#                 against the random policy (measured alongside) and DreamerV3's curves
# Both training parts use compile on when loop_compiled succeeded, else off.
# Output in OUT_DIR (flat, 7 files): summary.md (parts, speeds, runs per GPU, learning per game),
# summary.json (all of it: every part's status, seconds and numbers), learning_curves.csv,
# sequence_speed.csv, pytest_gpu.txt, log.txt, and the runs' logs in runs_log.txt.
# Other settings: GPU_CHECK_DEVICE (cuda), GPU_CHECK_PRESET (atari100k), GPU_CHECK_GAMES (the
# list above), GPU_CHECK_LEVELS ("1 2 4 8"), GPU_CHECK_CONC_SETTLE / _WINDOW (3 / 8 s),
# GPU_CHECK_LEARN_RUNS / GPU_CHECK_RUN_STEPS (force the learning part's runs / steps),
# GPU_CHECK_EVAL_EPISODES / _FINAL_EVAL_EPISODES (3 / 5), GPU_CHECK_EVAL_ALLOWANCE (60 s),
# GPU_CHECK_RANDOM_EPISODES (10), GPU_CHECK_RUN_DIR (/tmp/gpu_check_run: the runs),
# GPU_CHECK_WORK (a new temp folder: the parts' own files).
#
# CPU rehearsal (tests/test_gpu_check.py): GPU_CHECK_DEVICE=cpu GPU_CHECK_PRESET=debug with
# tiny budgets runs every part end to end on the CPU, 2 concurrent runs included.
set -u
OUT=${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
PRESET=${GPU_CHECK_PRESET:-atari100k}
GAMES=${GPU_CHECK_GAMES:-Boxing Krull Assault Gopher CrazyClimber KungFuMaster UpNDown Pong}
LOOP_GAME=${GAMES%% *}
TOTAL=${GPU_CHECK_TOTAL:-530}
T_WHEELS=${GPU_CHECK_T_WHEELS:-60}
T_PYTEST=${GPU_CHECK_T_PYTEST:-130}
T_SEQ=${GPU_CHECK_T_SEQ:-60}
T_EAGER=${GPU_CHECK_T_EAGER:-60}
T_COMPILED=${GPU_CHECK_T_COMPILED:-120}
T_CONC=${GPU_CHECK_T_CONC:-150}
SEQ_LENGTHS=${GPU_CHECK_SEQ_LENGTHS:-64 128 1024 4096 16384}
LOOP_MEASURE=${GPU_CHECK_LOOP_MEASURE:-20}
LEVELS=${GPU_CHECK_LEVELS:-1 2 4 8}
CONC_SETTLE=${GPU_CHECK_CONC_SETTLE:-3}
CONC_WINDOW=${GPU_CHECK_CONC_WINDOW:-8}
LEARN_RUNS=${GPU_CHECK_LEARN_RUNS:-}      # force the learning part's runs (default: measured)
RUN_STEPS=${GPU_CHECK_RUN_STEPS:-}        # force the runs' length (default: from the speed)
EVAL_EPISODES=${GPU_CHECK_EVAL_EPISODES:-3}
FINAL_EVAL_EPISODES=${GPU_CHECK_FINAL_EVAL_EPISODES:-5}
EVAL_ALLOWANCE=${GPU_CHECK_EVAL_ALLOWANCE:-60}
RANDOM_EPISODES=${GPU_CHECK_RANDOM_EPISODES:-10}
RUN_DIR=${GPU_CHECK_RUN_DIR:-/tmp/gpu_check_run}
WORK=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu_check_work.XXXXXX)}
export PYTHONUNBUFFERED=1 MAMBA_DETERMINISTIC=1
mkdir -p "$WORK"
# nothing from an earlier check may pass for this one's
rm -rf "$WORK"/{env,loop_eager,loop_compiled,concurrency,learning}.json "$WORK/concurrency" \
    "$OUT"/{summary.json,summary.md,learning_curves.csv,sequence_speed.csv,pytest_gpu.txt} \
    "$OUT/runs_log.txt"
LOG="$OUT/log.txt"
PARTS="$WORK/parts.jsonl"
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

say "start: device $DEVICE, preset $PRESET, games $GAMES, total budget ${TOTAL}s, out $OUT, work $WORK"
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
"$PY" benchmarks/gpu_summary.py env "$WORK/env.json" >>"$LOG" 2>&1
cat "$WORK/env.json" >>"$LOG" 2>/dev/null

part pytest_gpu "$T_PYTEST" bash -c "'$PY' -m pytest -m gpu -q -p no:cacheprovider tests \
    >'$OUT/pytest_gpu.txt' 2>&1; rc=\$?; tail -n 15 '$OUT/pytest_gpu.txt'; \
    [ \$rc -eq 5 ] && exit 0; exit \$rc"   # 5: nothing collected (CPU rehearsal)

# shellcheck disable=SC2086
part sequence "$T_SEQ" "$PY" benchmarks/sequence_speed.py --device "$DEVICE" \
    --lengths $SEQ_LENGTHS --kinds mamba2 transformer gru --csv "$OUT/sequence_speed.csv"

loop() {  # loop NAME BUDGET COMPILE
    part "$1" "$2" bash -c "set -o pipefail; '$PY' benchmarks/train_loop.py --preset '$PRESET' \
        --game '$LOOP_GAME' --device '$DEVICE' --warm 3 --measure '$LOOP_MEASURE' \
        --set train.compile=$3 | tail -n 1 >'$WORK/$1.json'"
}
loop loop_eager "$T_EAGER" off
if loop loop_compiled "$T_COMPILED" on; then COMPILE=on; else COMPILE=off; fi
say "training parts use train.compile=$COMPILE"

# Runs per GPU: never past the point where the learning part would get less than 90 s.
CONC_BUDGET=$((TOTAL - $(elapsed) - 90))
[ "$CONC_BUDGET" -gt "$T_CONC" ] && CONC_BUDGET=$T_CONC
[ "$CONC_BUDGET" -lt 30 ] && CONC_BUDGET=30
# shellcheck disable=SC2086
part concurrency "$((CONC_BUDGET + 30))" "$PY" benchmarks/gpu_concurrency.py --device "$DEVICE" \
    --preset "$PRESET" --levels $LEVELS --games $GAMES --set "train.compile=$COMPILE" \
    --settle "$CONC_SETTLE" --window "$CONC_WINDOW" --budget "$CONC_BUDGET" \
    --json "$WORK/concurrency.json" --work "$WORK/concurrency"

# Learning: the time left (15 s kept for the report).
LEARN_BUDGET=$((TOTAL - $(elapsed) - 15))
[ "$LEARN_BUDGET" -lt 30 ] && LEARN_BUDGET=30
# shellcheck disable=SC2086
part learning "$((LEARN_BUDGET + 30))" "$PY" benchmarks/gpu_learning.py --device "$DEVICE" \
    --preset "$PRESET" --budget "$LEARN_BUDGET" --games $GAMES --run-dir "$RUN_DIR" \
    --json "$WORK/learning.json" --csv "$OUT/learning_curves.csv" \
    --concurrency "$WORK/concurrency.json" --loop "$WORK/loop_compiled.json" \
    --loop "$WORK/loop_eager.json" --compile "$COMPILE" --eval-episodes "$EVAL_EPISODES" \
    --final-eval-episodes "$FINAL_EVAL_EPISODES" --eval-allowance "$EVAL_ALLOWANCE" \
    --random-episodes "$RANDOM_EPISODES" ${LEARN_RUNS:+--runs "$LEARN_RUNS"} \
    ${RUN_STEPS:+--steps "$RUN_STEPS"}

# the runs' own logs, last lines of each, in one file
for f in "$WORK"/concurrency/worker*.log "$RUN_DIR"/*.log "$RUN_DIR"/_work/random_*.log; do
    [ -f "$f" ] && { echo "==> $f <=="; tail -n 40 "$f"; }
done >"$OUT/runs_log.txt" 2>/dev/null
"$PY" benchmarks/gpu_summary.py report --out "$OUT" --work "$WORK" --total-s "$(elapsed)" \
    --budget-s "$TOTAL" >>"$LOG" 2>&1 || say "the report failed: see log.txt"
say "done in $(elapsed)s: $OUT/summary.md, $OUT/summary.json"
