#!/usr/bin/env bash
# Start a Docker engine in the background if none answers; idempotent.
# Ports published by containers bind to 127.0.0.1 only (--ip), as the test network rule needs.
set -euo pipefail
if docker info >/dev/null 2>&1; then
    echo "docker engine: already running"
    exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
    echo "dockerd not found: install it with 'apt-get install -y docker.io'" >&2
    exit 1
fi
log="${DOCKERD_LOG:-/var/log/opskit-dockerd.log}"
setsid dockerd --ip 127.0.0.1 >"$log" 2>&1 < /dev/null &
for _ in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then
        echo "docker engine: started ($(docker version --format '{{.Server.Version}}'))"
        exit 0
    fi
    sleep 0.5
done
echo "docker engine did not answer within 60s; see $log" >&2
tail -n 20 "$log" >&2 || true
exit 1
