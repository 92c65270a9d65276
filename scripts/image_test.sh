#!/usr/bin/env bash
# make image-test: build the Dockerfile on a machine that reaches no image registry, run the image
# and prove it serves; then remove every container, image, daemon and file this run started.
#
# Docker Hub is out of reach here, so the script starts its own Docker engine (Debian's docker.io,
# with its own socket and data root and no networking of its own), makes a local base image with
# the same Python as tensorflow/tensorflow (debootstrap bookworm + docker import), and puts the
# pinned wheels in the build context so the build runs with --network none.
# Needs root (apt-get, debootstrap, dockerd). Downloads (apt packages, base root filesystem,
# wheels) are kept in $IMAGE_TEST_CACHE between runs.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
CACHE=${IMAGE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chatbot-image-test}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_TAG=chatbot-image-test-base:bookworm
IMAGE_TAG=chatbot:image-test
NAME=chatbot-image-test-$$
START=$SECONDS

log() { printf 'image-test [%4d s]: %s\n' $((SECONDS - START)) "$*" >&2; }
fail() {
    log "FAIL: $*"
    exit 1
}

[ "$(id -u)" = 0 ] || fail "needs root: it installs packages and runs dockerd"
[ -x "$PY" ] || fail "$PY not found: run make install first"

install_tools() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]}"
    apt-get update -qq
    # --no-install-recommends: no apparmor or cgroupfs-mount; this run configures its own daemon.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A base with the Python of tensorflow/tensorflow (3.11), pip and venv, so the same Dockerfile
# builds on it; cached as a tar file, since debootstrap is the slow step.
make_base_rootfs() {
    [ -s "$CACHE/base-rootfs.tar" ] && return
    log "debootstrap bookworm (python3, pip, venv) from $MIRROR"
    local rootfs="$WORK/rootfs"
    debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,passwd \
        bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
        fail "debootstrap failed; see the end of its log:$(tail -n 20 "$WORK/debootstrap.log")"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    mkdir -p "$CACHE"
    tar -C "$rootfs" --numeric-owner -cf "$CACHE/base-rootfs.tar.tmp" .
    mv "$CACHE/base-rootfs.tar.tmp" "$CACHE/base-rootfs.tar"
    rm -rf "$rootfs"
}

download_wheels() {
    log "wheels for requirements.txt into $CACHE/wheels"
    # Every pin whatever its environment marker: the base's Python (3.11.2) needs pins that
    # this host's Python skips, such as async-timeout.
    sed 's/[[:space:]]*;.*//' requirements.txt >"$WORK/all-pins.txt"
    "$PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        -r "$WORK/all-pins.txt" -d "$CACHE/wheels" >"$WORK/pip.log" 2>&1 ||
        fail "pip download failed:$(tail -n 20 "$WORK/pip.log")"
}

# The build context is what a fresh clone holds (tracked and new, not ignored, files), plus the
# wheels: so a developer's models/*.h5 cannot hide a broken train-at-build step.
make_context() {
    local context="$WORK/context"
    mkdir -p "$context"
    git ls-files -z --cached --others --exclude-standard |
        tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$context" -xf -
    cp -l "$CACHE"/wheels/*.whl "$context/wheels/" 2>/dev/null || cp "$CACHE"/wheels/*.whl "$context/wheels/"
    # A developer's conversation log, as `make run` leaves it: check_lean proves it does not ship.
    printf 'SQLite format 3\000' >"$context/models/conversations.sqlite3"
    : >"$context/models/conversations.sqlite3-wal"
}

start_dockerd() {
    log "starting dockerd (socket $WORK/docker.sock)"
    # No bridge, no iptables: this daemon must not change the host's network; containers use
    # --network host (run) or none (build).
    dockerd --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
        --host "unix://$WORK/docker.sock" --bridge=none --iptables=false --ip6tables=false \
        --ip-forward=false --ip-masq=false >"$WORK/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    export DOCKER_HOST="unix://$WORK/docker.sock"
    local deadline=$((SECONDS + 60))
    until docker version >/dev/null 2>&1; do
        kill -0 "$DOCKERD_PID" 2>/dev/null || fail "dockerd exited:$(tail -n 20 "$WORK/dockerd.log")"
        [ $SECONDS -lt $deadline ] || fail "dockerd did not answer in 60 s"
        sleep 0.5
    done
    log "dockerd $(docker version -f '{{.Server.Version}}'), storage driver $(docker info -f '{{.Driver}}')"
}

cleanup() {
    local status=$?
    set +e
    if [ -n "${DOCKERD_PID:-}" ]; then
        # Images and build cache live in $WORK/data and go with it.
        docker rm -f "$NAME" >/dev/null 2>&1
        kill "$DOCKERD_PID" 2>/dev/null
        wait "$DOCKERD_PID" 2>/dev/null
    fi
    # dockerd unmounts what it mounted; anything left (after a crash) must go before rm -rf.
    if [ -n "${WORK:-}" ]; then
        grep -F " $WORK/" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l
        rm -rf "$WORK"
    fi
    [ $status -eq 0 ] || log "failed after $((SECONDS - START)) s"
    exit $status
}

# What serving needs and nothing else: no wheels, pip caches, training plots or conversation logs.
check_lean() {
    local leftovers
    leftovers=$(docker run --rm --network none --user 0 "$IMAGE_TAG" sh -c \
        'find /tmp /srv /opt /root \( -name "*.whl" -o -name ".cache" -o -name "*.sqlite3*" \) -print
         find /srv/chatbot/models -mindepth 1 ! -name "*.h5" -print; true')
    [ -z "$leftovers" ] || fail "build leftovers in the image: $leftovers"
    docker history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE_TAG" | cut -c1-110 | head -n 12 >&2
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds
    local limit=$1 what=$2
    local deadline=$((SECONDS + limit))
    shift 2
    until "$@"; do
        [ "$(docker inspect -f '{{.State.Running}}' "$NAME")" = true ] ||
            fail "container exited while waiting for $what:$(docker logs "$NAME" 2>&1 | tail -n 30)"
        [ $SECONDS -lt $deadline ] || fail "no $what after $limit s:$(docker logs "$NAME" 2>&1 | tail -n 30)"
        sleep 0.5
    done
}

healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$NAME")" = healthy ]; }

check_serving() {
    local port url reply
    port=$("$PY" -m tests.harness free-port)
    url="http://127.0.0.1:$port"
    log "running the image on $url"
    # The image's own HEALTHCHECK command, checked every 2 s instead of 30 s; a read-only root
    # filesystem as in docker-compose.yml and deploy/k8s.
    docker run -d --name "$NAME" --network host -e HOST=127.0.0.1 -e PORT="$port" \
        --read-only --tmpfs /tmp --health-interval 2s --health-start-period 60s "$IMAGE_TAG" >/dev/null
    wait_for 60 "answer on /readyz" curl -fs -o /dev/null "$url/readyz"
    wait_for 30 "healthy status from HEALTHCHECK" healthy

    [ "$(docker exec "$NAME" id -u)" = 10001 ] || fail "the server does not run as uid 10001"
    [ "$(curl -fsS "$url/healthz")" = '{"status":"ok"}' ] || fail "/healthz"
    reply=$(curl -fsS -H 'Content-Type: application/json' -H 'Accept: application/json' \
        -d '{"data": "hello there"}' "$url/predict") || fail "/predict did not answer 200"
    echo "$reply" | "$PY" -c '
import json, sys
reply = json.load(sys.stdin)
assert reply["intent"]["name"] == "greeting" and not reply["fallback"] and reply["response"], reply
' || fail "/predict answered: $reply"
    reply=$(curl -fsS -d '{"data":"What'"'"'s%20up?"}' -H 'Content-Type: text/plain' "$url/predict") ||
        fail "the README's curl line did not answer 200"
    [ -n "$reply" ] || fail "/predict answered with nothing"
    log "/healthz, /readyz and /predict answer ($reply)"
    log "memory in use: $(docker stats --no-stream --format '{{.MemUsage}}' "$NAME")"

    local stop_start=$SECONDS
    docker stop -t 30 "$NAME" >/dev/null
    local code
    code=$(docker inspect -f '{{.State.ExitCode}}' "$NAME")
    [ "$code" = 0 ] || fail "gunicorn exited with $code on SIGTERM:$(docker logs "$NAME" 2>&1 | tail -n 20)"
    docker logs "$NAME" 2>&1 | grep -q 'Shutting down: Master' || fail "no clean gunicorn shutdown in the log"
    log "SIGTERM: gunicorn shut down cleanly in $((SECONDS - stop_start)) s, exit status 0"
}

install_tools
WORK=$(mktemp -d /tmp/chatbot-image-test.XXXXXX)
trap cleanup EXIT
trap 'log "command failed on line $LINENO"' ERR
trap 'exit 130' INT TERM
mkdir -p "$CACHE/wheels"
make_base_rootfs
download_wheels
make_context
start_dockerd

docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' "$CACHE/base-rootfs.tar" "$BASE_TAG" >/dev/null

log "docker build --network none (BASE_IMAGE=$BASE_TAG)"
build_start=$SECONDS
# The classic builder: this CLI has no buildx plugin, and the Dockerfile needs no BuildKit feature.
DOCKER_BUILDKIT=0 docker build --network none --build-arg "BASE_IMAGE=$BASE_TAG" \
    -t "$IMAGE_TAG" "$WORK/context" >"$WORK/build.log" 2>&1 ||
    fail "docker build failed:$(tail -n 40 "$WORK/build.log")"
build_time=$((SECONDS - build_start))
size=$(docker image inspect -f '{{.Size}}' "$IMAGE_TAG")
base_size=$(docker image inspect -f '{{.Size}}' "$BASE_TAG")
log "built in ${build_time} s: image $((size / 1000000)) MB, of which base $((base_size / 1000000)) MB"

check_lean
check_serving
log "PASS in $((SECONDS - START)) s (build ${build_time} s)"
