#!/usr/bin/env bash
# Stop the daemons that scripts/slurm_local_start.sh STATE_DIR started: by the PIDs it recorded
# in STATE_DIR/pids (never by process name), slurmd first, munged last.
set -uo pipefail
STATE=${1:?usage: $0 STATE_DIR}
PIDS="$STATE/pids"
[ -s "$PIDS" ] || exit 0
tac "$PIDS" | while read -r name pid; do
  [ -n "${pid:-}" ] || continue
  if kill -0 "$pid" 2>/dev/null; then
    echo "stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then echo "$name (pid $pid) ignored SIGTERM; SIGKILL"; kill -9 "$pid"; fi
  fi
done
: > "$PIDS"
# remove the config only if this project's start script wrote it
MARK="# written by drama-repro scripts/slurm_local_start.sh"
for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
  if [ -f "$f" ] && grep -qF "$MARK" "$f"; then rm -f "$f"; fi
done
