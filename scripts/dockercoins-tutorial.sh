#!/usr/bin/env bash
# The second Docker Swarm tutorial (dockercoins), its commands as a user types them with the
# stock docker CLI, against the swarm manager in DOCKER_HOST. `make demo` runs it on the lab's
# node1; tests/e2e/test_dockercoins.py on the test lab's. See docs/dockercoins.md.
#
# After each step that changes the load it prints the hashes per second read from webui's
# /json on port 8000: the counter `hashes` at two moments, apart by MEASURE_S, divided by the
# time between them as webui tells it (`now`), as the tutorial's web page computes it.
#
# Environment:
#   DOCKER_HOST   the swarm's manager (required)
#   FETCH         a command that prints the body of the URL appended to it, run where
#                 127.0.0.1 is the DOCKER_HOST's host (the push goes there): "busybox wget -q
#                 -O -" on the host itself; `make demo`: "swarmlet lab exec node1 -- ...".
#                 Each fetch is cut after 10 s (Debian's static busybox 1.35 crashes on
#                 wget's own -T).
#   WEBUI_URL     webui's /json through the published port (http://127.0.0.1:8000/json)
#   IMAGES_FROM   the engine the images were built on (unix:///var/run/docker.sock)
#   WAIT_S        the bound on every wait: the registry, webui, the count moving (120)
#   SETTLE_S      after the count moves, the time given to the rest of the workers (15)
#   MEASURE_S     the time between the two readings of a figure (20)
set -euo pipefail
shopt -s inherit_errexit

: "${DOCKER_HOST:?DOCKER_HOST must name the swarm manager to run the tutorial on}"
export DOCKER_HOST
read -r -a FETCH <<<"${FETCH:-busybox wget -q -O -}"
WEBUI_URL=${WEBUI_URL:-http://127.0.0.1:8000/json}
IMAGES_FROM=${IMAGES_FROM:-unix:///var/run/docker.sock}
WAIT_S=${WAIT_S:-120}
SETTLE_S=${SETTLE_S:-15}
MEASURE_S=${MEASURE_S:-20}

# Each command is shown as typed, then run; any that fails ends the script (set -e).
run() {
    printf '$ %s\n' "$*"
    "$@"
}

# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds, at most SECONDS.
wait_for() {
    local what=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            echo "dockercoins: not within ${seconds} s: $what" >&2
            return 1
        fi
        sleep 1
    done
}

fetch() {
    timeout 10 "${FETCH[@]}" "$1"
}

# webui's /json as "HASHES NOW"; fails while it does not answer (or answers 503: no redis).
webui_stats() {
    local body hashes now
    body=$(fetch "$WEBUI_URL" 2>/dev/null) || return 1
    hashes=$(sed -n 's/.*"hashes": *\([0-9][0-9]*\).*/\1/p' <<<"$body")
    now=$(sed -n 's/.*"now": *\([0-9][0-9.eE+-]*\).*/\1/p' <<<"$body")
    [[ -n $hashes && -n $now ]] || return 1
    echo "$hashes $now"
}

# A reading of /json, tried for a few seconds (an answer may be lost while tasks move).
reading() {
    wait_for "webui answering on $WEBUI_URL" 10 webui_stats >/dev/null
    webui_stats
}

hashes_past() {
    local stats
    stats=$(webui_stats) || return 1
    ((${stats%% *} > $1))
}

# hashes_per_second STEP: wait for webui and for the count to move, give the workers
# SETTLE_S, then read the count MEASURE_S apart and print the rate.
hashes_per_second() {
    local step=$1 first before after
    wait_for "webui answering on $WEBUI_URL" "$WAIT_S" webui_stats >/dev/null
    first=$(reading)
    wait_for "the hash count moving past ${first%% *}" "$WAIT_S" hashes_past "${first%% *}"
    sleep "$SETTLE_S"
    before=$(reading)
    sleep "$MEASURE_S"
    after=$(reading)
    awk -v step="$step" -v before="$before" -v after="$after" 'BEGIN {
        split(before, b, " "); split(after, a, " ")
        printf "dockercoins: %s: %.1f hashes/s (hashes %d -> %d in %.1f s)\n",
            step, (a[1] - b[1]) / (a[2] - b[2]), b[1], a[1], a[2] - b[2]
    }'
}

registry_answers() {
    fetch http://127.0.0.1:5000/v2/ >/dev/null 2>&1
}

network_error=""
network_removed() {
    local out
    if out=$(docker network rm dockercoins 2>&1); then
        echo "$out"
        return 0
    fi
    network_error=$out
    return 1
}

# Build. The tutorial runs `docker-compose build` on node1. Its images are built here already,
# offline, on the machine's engine (scripts/images/dockercoins.sh): loading them into node1's
# engine stands in for the build.
printf '$ %s\n' "docker -H $IMAGES_FROM save dockercoins_hasher dockercoins_rng dockercoins_webui dockercoins_worker | docker load"
docker -H "$IMAGES_FROM" save dockercoins_hasher dockercoins_rng dockercoins_webui dockercoins_worker |
    docker load

# Ship: a registry as a service, the images pushed to it through the routing mesh.
run docker service create --name registry --publish 5000:5000 registry
wait_for "the registry answering on 127.0.0.1:5000" "$WAIT_S" registry_answers
for SERVICE in hasher rng webui worker; do
    run docker tag "dockercoins_$SERVICE" "127.0.0.1:5000/dockercoins_$SERVICE"
    run docker push "127.0.0.1:5000/dockercoins_$SERVICE"
done

# Run: an overlay network, redis, the four services from the registry.
run docker network create --driver overlay --attachable dockercoins
run docker service create --network dockercoins --name redis redis
for SERVICE in hasher rng webui worker; do
    run docker service create --network dockercoins --name "$SERVICE" "127.0.0.1:5000/dockercoins_$SERVICE"
done
run docker service update webui --publish-add 8000:80 --detach=false
hashes_per_second "1 worker"

run docker service scale worker=10
hashes_per_second "10 workers"

# One rng answers one request at a time: a global rng, one on every host.
run docker service rm rng
run docker service create --name rng --network dockercoins --mode global 127.0.0.1:5000/dockercoins_rng
run docker service ps rng
hashes_per_second "10 workers, rng global"

# Clean up.
printf '$ %s\n' "docker service ls -q | xargs docker service rm"
docker service ls -q | xargs docker service rm
# The network is in use until the services' tasks are gone: a user tries again.
printf '$ %s\n' "docker network rm dockercoins"
if ! wait_for "the network dockercoins removed" "$WAIT_S" network_removed; then
    echo "$network_error" >&2
    exit 1
fi
