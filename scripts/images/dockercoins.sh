#!/usr/bin/env bash
# Builds the images of dockercoins (the second Swarm tutorial's application) offline:
# dockercoins_{rng,hasher,worker,webui}:latest from demo/dockercoins/, and redis:latest.
#
# No Docker Hub and no debootstrap: each image is a root made of the host's own Debian files,
# imported with `docker import`. The four apps share one root: Debian's python3 interpreter,
# the standard-library modules the apps can reach (found by modulefinder) compiled once, the
# shared libraries `ldd` names, and the four app files under /app. Imported four times from
# the same tar stream, with a different CMD each, the four images share one layer. redis is
# Debian's redis-server binary and its libraries, with a config file that listens everywhere
# without protected mode or persistence. See docs/dockercoins.md.
#
# Idempotent: an image is built again only when it is missing or was built from other sources
# (its label com.swarmlet.dockercoins.source holds the digest of what it was built from).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

APPS=(rng hasher worker webui)
APP_SOURCES=demo/dockercoins
PYTHON=/usr/bin/python3 # Debian's (package python3), not whichever python3 is first in PATH
REDIS_SERVER=/usr/bin/redis-server # Debian's (package redis-server)
LABEL=com.swarmlet.dockercoins.source
SELF=scripts/images/dockercoins.sh
# Standard-library modules left out of the apps' root. modulefinder follows every import it
# sees, also on paths the apps never take (pydoc behind site's help(), unittest's test
# support...); and the apps' modules import ssl and _hashlib only in a try (hashlib falls
# back to its built-in SHA-256): leaving them out leaves out OpenSSL's 5 MB of libraries.
EXCLUDES=test,unittest,doctest,pdb,pydoc,pydoc_data,lib2to3,distutils,tkinter,idlelib,ensurepip
EXCLUDES+=,asyncio,concurrent,multiprocessing,ctypes,ssl,_ssl,_hashlib,xmlrpc,readline
EXCLUDES+=,rlcompleter,_testcapi,_testinternalcapi

# The machine's engine, whatever DOCKER_HOST a lab shell left behind.
export DOCKER_HOST=unix:///var/run/docker.sock
unset DOCKER_CONTEXT

say() { printf 'dockercoins: %s\n' "$*" >&2; }

need() {
    if [ ! -x "$1" ]; then
        say "$1 is missing: install Debian's $2 (scripts/bootstrap.sh does)"
        exit 1
    fi
}

# The digest of the files an image is made from: a change to any of them builds it again.
digest() {
    local file
    for file in "$@"; do
        printf '%s\n' "$file"
        sha256sum <"$file"
    done | sha256sum | cut -d' ' -f1
}

up_to_date() { # IMAGE DIGEST
    [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null)" = "$2" ]
}

# A root laid out as Debian's (merged /usr), with what any program there needs.
new_root() {
    local root=$1
    mkdir -p "$root"/{usr/bin,usr/lib,usr/lib64,etc,tmp,proc,sys,dev}
    ln -s usr/bin "$root/bin"
    ln -s usr/lib "$root/lib"
    ln -s usr/lib64 "$root/lib64"
    chmod 1777 "$root/tmp"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
}

copy() { # ROOT FILE...: each file at its own path, symbolic links followed
    local root=$1 file
    shift
    for file in "$@"; do
        mkdir -p "$root$(dirname "$file")"
        cp -L "$file" "$root$file"
    done
}

# The shared libraries the given programs and modules load, as ldd names them.
libraries() {
    # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)"
    ldd "$@" 2>/dev/null |
        awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(/ { print $1 }' |
        sort -u
}

# A root as a tar stream that is the same for the same files: same layer, same digest.
pack() { # ROOT OUTPUT
    tar -C "$1" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$2" .
}

# The image from the tar, with the changes and the digest as a label; the image it replaces
# removed when nothing uses it.
import_image() { # TAR IMAGE DIGEST CHANGE...
    local tar=$1 image=$2 digest=$3 old new
    shift 3
    old=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
    local changes=() change
    for change in "$@" "LABEL $LABEL=$digest"; do
        changes+=(-c "$change")
    done
    new=$(docker import -m "built by $SELF" "${changes[@]}" "$tar" "$image")
    if [ -n "$old" ] && [ "$old" != "$new" ] &&
        [ "$(docker image inspect -f '{{len .RepoTags}}' "$old" 2>/dev/null)" = 0 ]; then
        docker rmi "$old" >/dev/null 2>&1 || true # still used by a container: leave it
    fi
    say "built $image ($(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec))"
}

build_apps() { # DIGEST WORKDIR
    local digest=$1 work=$2 root=$2/apps python version stdlib
    python=$(readlink -f "$PYTHON")
    version=$(basename "$python") # python3.11
    stdlib=/usr/lib/$version
    new_root "$root"
    copy "$root" "$python"
    ln -s "$version" "$root/usr/bin/python3"
    # What the interpreter needs at start (os.py is how it finds its prefix, site and the
    # codecs it imports), then what modulefinder finds behind the apps.
    local modules
    modules=$("$PYTHON" - "$EXCLUDES" "$APP_SOURCES"/*/*.py <<'EOF'
import modulefinder
import pathlib
import sys
import sysconfig

stdlib = sysconfig.get_paths()["stdlib"] + "/"
finder = modulefinder.ModuleFinder(excludes=sys.argv[1].split(","))
for script in sys.argv[2:]:
    finder.run_script(script)
for name in ("os", "site", "encodings"):
    finder.import_hook(name)
# Every codec: the interpreter loads them by name (socket's host names need idna).
encodings = finder.modules["encodings"].__path__[0]
finder.import_hook("encodings", None, [p.stem for p in pathlib.Path(encodings).glob("[!_]*.py")])
for module in finder.modules.values():
    if module.__file__ and module.__file__.startswith(stdlib):
        print(module.__file__)
EOF
    )
    # shellcheck disable=SC2046 # one file a word: no spaces in the standard library's names
    copy "$root" $modules
    # Compiled once here rather than by each container at every start: in the hash mode (never
    # checked against the source's time) and with the paths of the image, so the same sources
    # compile to the same bytes.
    "$PYTHON" -m compileall -q -j 0 --invalidation-mode unchecked-hash -s "$root" -p / \
        "$root$stdlib"
    # shellcheck disable=SC2046
    copy "$root" $(libraries "$python" $(grep '\.so$' <<<"$modules" || true))
    local app
    mkdir -p "$root/app"
    for app in "${APPS[@]}"; do
        cp "$APP_SOURCES/$app/$app.py" "$root/app/$app.py"
    done
    pack "$root" "$work/apps.tar"
    for app in "${APPS[@]}"; do
        local expose=()
        [ "$app" = worker ] || expose=("EXPOSE 80")
        import_image "$work/apps.tar" "dockercoins_$app:latest" "$digest" \
            "ENV PATH=/usr/local/bin:/usr/bin:/bin" "WORKDIR /app" "${expose[@]}" \
            "CMD [\"python3\", \"$app.py\"]"
    done
}

build_redis() { # DIGEST WORKDIR
    local digest=$1 work=$2 root=$2/redis
    new_root "$root"
    # Debian's redis-server is a link to redis-check-rdb: one binary that acts by its name.
    mkdir -p "$root/data" "$root/etc/redis"
    cp -L "$REDIS_SERVER" "$root/usr/bin/redis-server"
    # shellcheck disable=SC2046
    copy "$root" $(libraries "$REDIS_SERVER")
    # Started with no arguments, as the tutorial's service is: this file is its defaults.
    cat >"$root/etc/redis/redis.conf" <<'EOF'
# dockercoins' redis: every address (IPv6 too where there is one), no password, so no
# protected mode; nothing written to disk (the coins live as long as the task).
bind * -::*
protected-mode no
port 6379
save ""
appendonly no
dir /data
EOF
    pack "$root" "$work/redis.tar"
    import_image "$work/redis.tar" redis:latest "$digest" \
        "ENV PATH=/usr/local/bin:/usr/bin:/bin" "WORKDIR /data" "EXPOSE 6379" \
        'CMD ["redis-server", "/etc/redis/redis.conf"]'
}

main() {
    need "$PYTHON" python3
    need "$REDIS_SERVER" redis-server
    local apps_digest redis_digest app build_apps=
    # shellcheck disable=SC2046 # no spaces in the apps' file names
    apps_digest=$(digest "$SELF" "$(readlink -f "$PYTHON")" \
        $(find "$APP_SOURCES" -type f ! -path '*/__pycache__/*' | sort))
    redis_digest=$(digest "$SELF" "$(readlink -f "$REDIS_SERVER")")
    for app in "${APPS[@]}"; do
        up_to_date "dockercoins_$app:latest" "$apps_digest" || build_apps=1
    done
    local build_redis=
    up_to_date redis:latest "$redis_digest" || build_redis=1
    [ -n "$build_apps$build_redis" ] || return 0

    local work
    work=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: $work is local
    trap "rm -rf '$work'" EXIT
    [ -z "$build_apps" ] || build_apps "$apps_digest" "$work"
    [ -z "$build_redis" ] || build_redis "$redis_digest" "$work"
}

main
