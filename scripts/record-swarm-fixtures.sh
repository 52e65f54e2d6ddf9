#!/usr/bin/env bash
# Record Docker Swarm's JSON for the commands tests/e2e/test_shapes.py runs against swarmlet,
# as fixtures: tests/fixtures/swarm-20.10/*.json.
#
#   sudo scripts/record-swarm-fixtures.sh [OUT_DIR]
#
# Run as root on a machine with dockerd (20.10 here: Debian 12's) and the test image
# (`scripts/bootstrap.sh` builds swarmlet-test/busybox:latest). The script starts a private
# dockerd of its own, never touching the machine's engine: its own --data-root, --exec-root,
# --pidfile and socket under a temporary directory, in a network namespace of its own
# (nsenter --net, not `ip netns exec`, which remounts /sys and breaks dockerd's cgroups), with a
# veth whose inner end holds the address Swarm advertises (this kernel has no dummy links). The
# test image is loaded into it from the machine's engine. It puts that private engine into
# swarm mode, creates the objects, writes their JSON, then stops the engine by its PID and
# deletes the namespace (and the veth with it) and the directory.
#
# There is no IPVS on this machine: Swarm's ingress sandbox may fail to be programmed; the
# objects are recorded all the same. Values (IDs, times, addresses) differ from run to run;
# the test compares the keys and their nesting only.
set -euo pipefail

OUT=${1:-"$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures/swarm-20.10"}
IMAGE=swarmlet-test/busybox:latest
NS=swfx-record
VETH=swfx-rec0
ADDR=172.31.254.2
DIR=$(mktemp -d /tmp/swarm-fixtures.XXXXXX)
SOCK="$DIR/docker.sock"
PIDFILE="$DIR/dockerd.pid"

cleanup() {
    if [[ -s $PIDFILE ]]; then
        local pid
        pid=$(cat "$PIDFILE")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    # dockerd leaves its mounts under its roots when it is stopped mid-way.
    grep -o " $DIR[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link set lo up
ip link add "$VETH" type veth peer name eth0 netns "$NS"
ip link set "$VETH" up
ip -n "$NS" addr add "$ADDR/24" dev eth0
ip -n "$NS" link set eth0 up

nsenter --net="/run/netns/$NS" dockerd \
    --data-root "$DIR/data" --exec-root "$DIR/exec" --pidfile "$PIDFILE" \
    -H "unix://$SOCK" \
    --containerd-namespace "$NS" --containerd-plugins-namespace "$NS-plugins" \
    --log-level=warn >"$DIR/dockerd.log" 2>&1 &

d() { docker -H "unix://$SOCK" "$@"; }
api() { curl -sf --unix-socket "$SOCK" "http://docker/v1.41$1"; }

for _ in $(seq 60); do d version >/dev/null 2>&1 && break; sleep 0.5; done
d version --format 'recording from Docker {{.Server.Version}}'
docker save "$IMAGE" | d load -q

d swarm init --advertise-addr "$ADDR" >/dev/null
d network create -d overlay shapes-net >/dev/null
d service create -d -q --name shapes-web --replicas 1 --network shapes-net -p 8080:80 \
    "$IMAGE" sleep 3600 >/dev/null
d service create -d -q --name shapes-global --mode global "$IMAGE" sleep 3600 >/dev/null

# Each task's JSON once it has a node and an address (it need not run: no IPVS).
task_of() { d service ps -q --no-trunc "$1" | head -n1; }
for _ in $(seq 60); do
    web=$(task_of shapes-web)
    [[ -n $web ]] && d inspect --type task "$web" | grep -q '"NodeID": "[a-z0-9]' && break
    sleep 0.5
done
sleep 3

mkdir -p "$OUT"
d service inspect shapes-web >"$OUT/service-replicated.json"
d service inspect shapes-global >"$OUT/service-global.json"
d node inspect self >"$OUT/node.json"
d inspect --type task "$(task_of shapes-web)" >"$OUT/task.json"
d network inspect ingress >"$OUT/network-ingress.json"
d network inspect shapes-net >"$OUT/network-overlay.json"
api /swarm | python3 -m json.tool --indent 4 >"$OUT/swarm.json"
# The raw API without insertDefaults, as clients other than `docker service inspect` read it.
api /services/shapes-web | python3 -m json.tool --indent 4 >"$OUT/service-replicated-raw.json"

d service rm shapes-web shapes-global >/dev/null
d swarm leave --force >/dev/null
echo "fixtures written to $OUT"
