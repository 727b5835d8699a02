#!/usr/bin/env bash
# Stand up a one-node SLURM cluster on this machine (Debian/Ubuntu, as root, no systemd needed)
# so that `snakemake --profile slurm` can be tried and tested for real.
#
#   scripts/slurm_local_start.sh STATE_DIR     # state, spool, logs and PIDs under STATE_DIR
#   scripts/slurm_local_stop.sh STATE_DIR      # stops the daemons this script started, by PID
#
# Installs Debian's SLURM (slurmctld, slurmd, slurm-client, munge) with apt-get if missing,
# writes /etc/slurm/slurm.conf and gres.conf (refusing to overwrite a slurm.conf it did not
# write: this is for CI machines and workstations, not for a real cluster's head node), starts
# munged (unless one already runs), slurmctld and slurmd, and waits until the node is idle.
# The config must sit at the default path: snakemake-executor-plugin-slurm-jobstep removes
# SLURM_* variables (SLURM_CONF included) before its nested `srun`, which then finds no config.
# The node advertises one fake GPU per core (gres backed by /dev/null, /dev/zero, ...) so that
# jobs asking for --gpus=1 schedule, side by side. There is no accounting
# database (sacct does not work), so the SLURM profile's `slurm-status-command: squeue` is what
# the workflow uses; MinJobAge=300 keeps finished jobs visible to squeue long enough.
# The PIDs of the daemons started here are appended to STATE_DIR/pids for the stop script.
set -euo pipefail
STATE=${1:?usage: $0 STATE_DIR}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
[ "$(id -u)" = 0 ] || { echo "error: must run as root (starts munged/slurmctld/slurmd)" >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive

# 1. packages (skip apt when already installed)
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || { echo "error: SLURM is not installed and apt-get is unavailable" >&2; exit 3; }
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# 2. a previous cluster in the same STATE_DIR is stopped first
"$(dirname "$0")/slurm_local_stop.sh" "$STATE" >/dev/null 2>&1 || true
: > "$STATE/pids"

# 3. munge (authentication between SLURM daemons and clients)
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --force
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged        # daemonizes; PID in /run/munge/munged.pid
  for _ in $(seq 1 20); do [ -s /run/munge/munged.pid ] && break; sleep 0.25; done
  echo "munged $(cat /run/munge/munged.pid)" >> "$STATE/pids"
  munge -n | unmunge >/dev/null
fi

# 4. configuration (gres.conf must sit beside slurm.conf)
MARK="# written by drama-repro scripts/slurm_local_start.sh"
CONF=/etc/slurm/slurm.conf
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  echo "error: $CONF exists and was not written by this script; not overwriting it" >&2
  exit 5
fi
mkdir -p /etc/slurm "$STATE"/{state,spool,log}
HW=$(slurmd -C | head -1 | sed -E 's/^NodeName=[^ ]+ //')   # CPUs=.. Boards=.. RealMemory=..
# One fake GPU per core (up to 4), so that GPU jobs run side by side as on a GPU node: a gpu
# gres needs a device file per unit; character devices that every system has stand in.
FAKE_DEVICES=(/dev/null /dev/zero /dev/full /dev/urandom)
NGPU=$(( $(nproc) < 4 ? $(nproc) : 4 ))
GPU_FILES=$(IFS=,; echo "${FAKE_DEVICES[*]:0:$NGPU}")
cat > "$CONF" <<CONF
$MARK (state in $STATE)
ClusterName=drama-local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
MinJobAge=300
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.log
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 $HW Gres=gpu:fake:$NGPU State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
printf '%s\nNodeName=localhost Name=gpu Type=fake File=%s\n' "$MARK" "$GPU_FILES" > /etc/slurm/gres.conf

# 5. daemons (both daemonize and write their PID files)
slurmctld -c                 # -c: fresh state (no jobs or node drains from an earlier start)
for _ in $(seq 1 40); do [ -s "$STATE/slurmctld.pid" ] && break; sleep 0.25; done
echo "slurmctld $(cat "$STATE/slurmctld.pid")" >> "$STATE/pids"
slurmd -N localhost          # the node is called localhost in slurm.conf, whatever the hostname
for _ in $(seq 1 40); do [ -s "$STATE/slurmd.pid" ] && break; sleep 0.25; done
echo "slurmd $(cat "$STATE/slurmd.pid")" >> "$STATE/pids"

for _ in $(seq 1 120); do
  [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && break
  sleep 0.5
done
if [ "$(sinfo -h -o %t 2>/dev/null)" != idle ]; then
  echo "error: the SLURM node did not become idle; logs in $STATE/log" >&2
  sinfo >&2 || true
  tail -n 20 "$STATE"/log/*.log >&2 || true
  exit 4
fi
sinfo
echo "SLURM is up (config $CONF, logs in $STATE/log)"
