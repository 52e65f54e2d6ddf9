#!/usr/bin/env bash
# `make run`: a fresh 3-host lab with a sample service, deployed by the stock docker CLI.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

swarmlet=.venv/bin/swarmlet
"$swarmlet" lab down
"$swarmlet" lab up --nodes 3
env_line=$("$swarmlet" lab env)
export DOCKER_HOST=${env_line#export DOCKER_HOST=}

docker service create --quiet --name hello --replicas 3 swarmlet-test/busybox:latest sleep 1d

cat <<MSG

The lab is up: three hosts (swl-node1..3 on bridge swl-lab0), node1 is the manager.
Point the docker CLI at it:

    $env_line

Then try:
    docker node ls
    docker service ps hello
    docker service scale hello=6
    .venv/bin/swarmlet lab status
    .venv/bin/swarmlet lab stop node2          # kill node2's swarmletd, as in a crash
    .venv/bin/swarmlet lab start node2
    .venv/bin/swarmlet lab exec node2 -- ip addr
    make down                                  # remove the lab

See docs/lab.md.
MSG
