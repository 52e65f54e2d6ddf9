#!/usr/bin/env bash
# The `registry` image (tags `registry:2` and `registry:latest`), made offline from Debian's
# docker-registry package (Docker's distribution 2.8): a root holding the registry binary, the
# libraries it links, and upstream's config (storage under /var/lib/registry, listening on
# :5000), imported with `docker import`. `docker service create --publish 5000:5000 registry`
# runs it with no arguments, as it runs the upstream image.
# Run by scripts/bootstrap.sh after the package is installed; nothing to do when the image exists.
set -euo pipefail

IMAGE=registry
BINARY=/usr/bin/docker-registry # from the docker-registry package

# The machine's engine, whatever DOCKER_HOST a lab shell left behind.
export DOCKER_HOST=unix:///var/run/docker.sock
unset DOCKER_CONTEXT

say() { printf 'images/registry: %s\n' "$*" >&2; }

has_image() { docker image inspect "$1" >/dev/null 2>&1; }

# Upstream's /etc/docker/registry/config.yml (distribution-library-image); Debian's own adds
# htpasswd auth and keeps the data under /var/lib/docker-registry.
write_config() {
    cat >"$1" <<'YAML'
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
YAML
}

# The binary at /bin/registry (upstream's path) and every library `ldd` names, at its path.
copy_binary() {
    local root=$1 library
    cp "$BINARY" "$root/bin/registry"
    for library in $(ldd "$BINARY" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$library")"
        cp -L "$library" "$root$library"
    done
}

build() {
    if [ ! -x "$BINARY" ]; then
        say "$BINARY is missing: install Debian's docker-registry (scripts/bootstrap.sh does)"
        exit 1
    fi
    say "building $IMAGE:2 from $BINARY"
    local root
    root=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: $root is local
    trap "rm -rf '$root'" EXIT
    mkdir -p "$root"/{bin,etc/docker/registry,var/lib/registry,tmp,proc,sys,dev}
    chmod 1777 "$root/tmp"
    copy_binary "$root"
    write_config "$root/etc/docker/registry/config.yml"
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    tar -C "$root" -c . | docker import \
        -c 'EXPOSE 5000' \
        -c 'CMD ["/bin/registry", "serve", "/etc/docker/registry/config.yml"]' \
        - "$IMAGE:2" >/dev/null
}

has_image "$IMAGE:2" || build
has_image "$IMAGE:latest" || docker tag "$IMAGE:2" "$IMAGE:latest"
