#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm.py: munged, slurmctld and slurmd (Debian's
# slurm-wlm and munge), all state under one folder, the node named localhost with this machine's CPUs.
#   tests/slurm/start.sh            # prints the SLURM_CONF to export; waits until `sinfo` shows the node idle
#   tests/slurm/stop.sh             # stops the three daemons by their PIDs
# Needs root (jobs run as root: SlurmUser=root). Settings: MNIST_LIT_SLURM_DIR (default /tmp/mnist_lit-slurm),
# MNIST_LIT_SLURM_PORT (slurmctld's port, default 6917; slurmd takes the next one).
set -euo pipefail
DIR="${MNIST_LIT_SLURM_DIR:-/tmp/mnist_lit-slurm}"
PORT="${MNIST_LIT_SLURM_PORT:-6917}"
HERE="$(cd "$(dirname "$0")" && pwd)"

for tool in munged slurmctld slurmd sinfo scontrol; do
    command -v "$tool" >/dev/null || { echo "start.sh: $tool not found: apt-get install slurm-wlm munge" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "start.sh: must run as root (the test cluster runs jobs as root)" >&2; exit 2; }

if [ -f "$DIR/slurm.conf" ] && state=$(SLURM_CONF="$DIR/slurm.conf" sinfo -h -o %t 2>/dev/null); then
    echo "start.sh: already running (node $state): left as it is" >&2  # perhaps running another test session's jobs
    echo "export SLURM_CONF=$DIR/slurm.conf"
    exit 0
fi
"$HERE/stop.sh" >/dev/null 2>&1 || true  # leftovers of an earlier cluster in the same folder
rm -rf "${DIR:?}"/{munge,state,spool,log,slurm.conf}  # only what this script writes there
mkdir -p "$DIR"/{munge,state,spool/localhost,log}
chmod 711 "$DIR"
chmod 711 "$DIR/munge"  # munged wants its socket's folder searchable by all

# munge: our own key and socket, so that a system munged (if any) is left alone.
dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$DIR/munge/munge.key"
munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"

cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cat > "$DIR/slurm.conf" <<CONF
# Written by tests/slurm/start.sh: one node (this machine, as localhost), everything under $DIR.
ClusterName=mnistlit
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
MailProg=/bin/true
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups (they rarely work in containers): processes tracked through /proc, no CPU binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobRequeue=1
ReturnToService=2
# Finished jobs stay known to slurmctld for an hour: tests/slurm/bin/sacct answers from scontrol.
MinJobAge=3600
KillWait=10
SchedulerParameters=sched_interval=2
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"

slurmctld -i
slurmd -N localhost

for _ in $(seq 60); do
    if [ "$(sinfo -h -o %t 2>/dev/null)" = idle ]; then
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 1
done
echo "start.sh: the node did not become idle within 60 s: see $DIR/log/" >&2
sinfo >&2 || true
exit 1
