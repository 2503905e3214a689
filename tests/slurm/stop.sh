#!/usr/bin/env bash
# Stops the cluster that tests/slurm/start.sh started: slurmd, slurmctld, munged, each by its PID file.
set -uo pipefail
DIR="${MNIST_LIT_SLURM_DIR:-/tmp/mnist_lit-slurm}"
status=0
for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            echo "stop.sh: $(basename "$pidfile" .pid) ($pid) did not stop on SIGTERM: killed" >&2
        fi
    fi
    rm -f "$pidfile"
done
exit $status
