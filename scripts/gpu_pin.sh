#!/usr/bin/env bash
# Run a command pinned to one GPU of this workstation, at most RUNS_PER_GPU commands per GPU:
#
#   scripts/gpu_pin.sh RUNS_PER_GPU LOCK_DIR -- CMD [ARGS...]
#
# Slots are lock files LOCK_DIR/slot{0..n_gpus*RUNS_PER_GPU-1}.lock held with flock(1) for the
# command's lifetime (released by the kernel when it ends, also on a crash or kill); slot s uses
# GPU s mod n_gpus, so jobs spread over the GPUs before any GPU gets a second one. The command
# runs with CUDA_VISIBLE_DEVICES set to that one GPU. When all slots are taken it waits.
# GPUs: the ones listed in CUDA_VISIBLE_DEVICES if set, else those `nvidia-smi -L` lists.
# Runs CMD unchanged when there is no GPU (CPU runs) or under SLURM (SLURM_JOB_ID set: the
# scheduler assigns the GPU; the SLURM profile keeps one GPU per job).
set -euo pipefail
if [ $# -lt 4 ] || [ "$3" != "--" ]; then
    echo "usage: scripts/gpu_pin.sh RUNS_PER_GPU LOCK_DIR -- CMD [ARGS...]" >&2
    exit 2
fi
per_gpu=$1
lock_dir=$2
shift 3
if ! [[ "$per_gpu" =~ ^[1-9][0-9]*$ ]]; then
    echo "gpu_pin: RUNS_PER_GPU must be a positive integer, got '$per_gpu'" >&2
    exit 2
fi
if [ -n "${SLURM_JOB_ID:-}" ]; then
    exec "$@"
fi
if [ -n "${CUDA_VISIBLE_DEVICES+x}" ]; then
    IFS=',' read -r -a gpus <<<"$CUDA_VISIBLE_DEVICES"
elif command -v nvidia-smi >/dev/null 2>&1; then
    mapfile -t gpus < <(nvidia-smi -L 2>/dev/null | sed -n 's/^GPU \([0-9]*\):.*/\1/p')
else
    gpus=()
fi
if [ ${#gpus[@]} -eq 0 ] || [ -z "${gpus[0]}" ]; then
    exec "$@"
fi
mkdir -p "$lock_dir"
n=${#gpus[@]}
slots=$((n * per_gpu))
while true; do
    for ((s = 0; s < slots; s++)); do
        gpu=${gpus[$((s % n))]}
        rc=0
        # -E 199: exit code when the slot is taken (a command exiting 199 itself would be retried)
        CUDA_VISIBLE_DEVICES=$gpu GPU_PIN_SLOT=$s flock -n -E 199 "$lock_dir/slot$s.lock" \
            "$@" || rc=$?
        if [ $rc -ne 199 ]; then
            exit $rc
        fi
    done
    sleep 5
done
