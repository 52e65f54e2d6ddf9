#!/usr/bin/env bash
# Makes this machine ready for swarmlet's tests and lab, installing only what is missing:
# Debian packages, the virtualenv, a running Docker Engine, the test images.
# Run as root on Debian 12; safe to run again and again (make test runs it every time).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# etcd-server: each manager's etcd member (swarmlet/manager/etcd); etcd-client: etcdctl.
PACKAGES=(docker.io nftables busybox-static iproute2 make docker-registry python3 redis-server
    etcd-server etcd-client)
IMAGE=swarmlet-test/busybox
LOG_DIR=/var/log/swarmlet
ENGINE_WAIT_S=60

# The machine's engine, whatever DOCKER_HOST a lab shell left behind.
export DOCKER_HOST=unix:///var/run/docker.sock
unset DOCKER_CONTEXT

say() { printf 'bootstrap: %s\n' "$*" >&2; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        say "$1 needs root"
        exit 1
    fi
}

install_packages() {
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$package")
    done
    [ "${#missing[@]}" -eq 0 ] && return
    need_root "installing ${missing[*]}"
    say "installing ${missing[*]}"
    # No daemon starts from a package's install script: we start dockerd ourselves, below.
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                "${missing[@]}"
    } || rc=$?
    [ -z "$made_policy" ] || rm -f "$policy"
    return "$rc"
}

make_venv() {
    # The marker holds the hash of the pyproject.toml last installed: a changed one (a new
    # dependency) installs again, whatever the files' times say.
    local marker=.venv/.swarmlet-installed wanted
    wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ ! -x .venv/bin/python ]; then
        say "creating .venv"
        if ! python3 -m venv .venv; then
            # Debian's own python3 keeps venv in a package of its own.
            install_packages python3-venv
            rm -rf .venv
            python3 -m venv .venv
        fi
    fi
    if [ "$(cat "$marker" 2>/dev/null)" != "$wanted" ]; then
        say "installing swarmlet and its dev tools into .venv"
        .venv/bin/python -m pip install -q -e '.[dev]'
        printf '%s\n' "$wanted" >"$marker"
    fi
}

start_engine() {
    docker version >/dev/null 2>&1 && return
    need_root "starting dockerd"
    mkdir -p "$LOG_DIR"
    say "starting dockerd (log: $LOG_DIR/dockerd.log)"
    # Its own session, so it outlives this script and the make or CI job that ran it.
    setsid dockerd >>"$LOG_DIR/dockerd.log" 2>&1 </dev/null &
    local waited
    for ((waited = 0; waited < ENGINE_WAIT_S; waited++)); do
        docker version >/dev/null 2>&1 && return
        sleep 1
    done
    say "dockerd did not answer within $ENGINE_WAIT_S s; the end of its log:"
    tail -n 30 "$LOG_DIR/dockerd.log" >&2
    exit 1
}

# A root of nothing but a static busybox: the test images need no registry.
build_images() {
    if ! docker image inspect "$IMAGE:latest" >/dev/null 2>&1; then
        say "building $IMAGE:latest from /bin/busybox"
        local root
        root=$(mktemp -d)
        # shellcheck disable=SC2064 # expand now: $root is local
        trap "rm -rf '$root'" EXIT
        mkdir -p "$root"/{bin,etc,root,tmp,proc,sys,dev}
        chmod 1777 "$root/tmp"
        cp /bin/busybox "$root/bin/busybox"
        local applet
        for applet in $("$root/bin/busybox" --list); do
            [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
        done
        echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
        echo 'root:x:0:' >"$root/etc/group"
        tar -C "$root" -c . | docker import -c 'CMD ["sh"]' - "$IMAGE:latest" >/dev/null
    fi
    if ! docker image inspect "$IMAGE:v2" >/dev/null 2>&1; then
        docker tag "$IMAGE:latest" "$IMAGE:v2"
    fi
}

install_packages "${PACKAGES[@]}"
make_venv
start_engine
build_images
scripts/images/registry.sh
scripts/images/dockercoins.sh
