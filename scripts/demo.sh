#!/usr/bin/env bash
# `make demo`: a fresh 3-host lab with per-node engines, and the second Swarm tutorial
# (dockercoins) run on it with the stock docker CLI (scripts/dockercoins-tutorial.sh).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

swarmlet=.venv/bin/swarmlet
"$swarmlet" lab down
"$swarmlet" lab up --nodes 3 --engine per-node
env_line=$("$swarmlet" lab env)
export DOCKER_HOST=${env_line#export DOCKER_HOST=}
node1_address=$(.venv/bin/python -c 'from swarmlet.lab.lab import Lab; print(Lab().host("node1").address)')

# webui's /json is read from node1's namespace, through port 8000 on node1's lab address.
FETCH="$swarmlet lab exec node1 -- busybox wget -q -O -" \
    WEBUI_URL="http://$node1_address:8000/json" \
    scripts/dockercoins-tutorial.sh

cat <<MSG

The tutorial ran and removed what it made; the lab is still up: three hosts (swl-node1..3
on bridge swl-lab0), each with an engine of its own, node1 is the manager.
Point the docker CLI at it:

    $env_line

Then try:
    docker node ls
    DOCKER_HOST=unix:///run/swarmlet-lab/node2/docker.sock docker image ls   # node2's engine
    make demo                                  # all of it again, on a fresh lab
    make down                                  # remove the lab

The tutorial step by step: docs/dockercoins.md; the lab: docs/lab.md.
MSG
