#!/usr/bin/env bash
# Make sure a Docker Engine answers on this machine: install docker.io and busybox-static when
# missing (Debian, as root), start dockerd detached when its socket does not answer, then wait
# until `docker info` works. Idempotent: on a machine where dockerd already runs it only checks.
#
# Env: DOCKER_WAIT (seconds to wait for the engine, default 60),
#      DOCKERD_LOG (default /var/log/swarmd-dockerd.log).
set -euo pipefail

DOCKER_WAIT="${DOCKER_WAIT:-60}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/swarmd-dockerd.log}"

log() { printf '[docker-up] %s\n' "$*" >&2; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        log "must run as root to $1"
        exit 1
    fi
}

install_packages() {
    local missing=()
    # A docker CLI alone (e.g. /usr/local/bin/docker) is not enough: we need the daemon.
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker >/dev/null 2>&1 || missing+=(docker.io)
    if ! dpkg -s busybox-static >/dev/null 2>&1; then
        missing+=(busybox-static)
    fi
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    need_root "install ${missing[*]}"
    # Deduplicate.
    local pkgs
    pkgs="$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"
    log "installing: ${pkgs}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    apt-get install -y -qq --no-install-recommends ${pkgs} </dev/null
}

engine_answers() {
    timeout 10 docker info >/dev/null 2>&1
}

start_dockerd() {
    need_root "start dockerd"
    if pgrep -x dockerd >/dev/null 2>&1; then
        log "dockerd is running but does not answer yet; waiting"
        return 0
    fi
    # A stale pid file from a killed daemon makes dockerd refuse to start.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    log "starting dockerd (log: ${DOCKERD_LOG})"
    mkdir -p "$(dirname "${DOCKERD_LOG}")"
    setsid dockerd >>"${DOCKERD_LOG}" 2>&1 </dev/null &
    disown || true
}

main() {
    install_packages
    if engine_answers; then
        log "Docker Engine is up ($(docker info --format '{{.ServerVersion}}' 2>/dev/null || echo '?'))"
        return 0
    fi
    start_dockerd
    local deadline=$((SECONDS + DOCKER_WAIT))
    until engine_answers; do
        if [ "${SECONDS}" -ge "${deadline}" ]; then
            log "Docker Engine did not answer within ${DOCKER_WAIT}s; last lines of ${DOCKERD_LOG}:"
            tail -n 30 "${DOCKERD_LOG}" >&2 2>/dev/null || true
            exit 1
        fi
        sleep 1
    done
    log "Docker Engine is up ($(docker info --format '{{.ServerVersion}}' 2>/dev/null || echo '?'))"
}

main "$@"
