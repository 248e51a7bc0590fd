#!/usr/bin/env bash
# Build the local test image (default swarmd-busybox:latest) without any registry: a rootfs
# holding the static busybox and one symlink per applet, imported with `docker import`.
# Does nothing when the image already exists. Needs busybox-static (scripts/docker-up.sh).
#
# Usage: scripts/build-image.sh [IMAGE]     (or env SWARMD_TEST_IMAGE)
set -euo pipefail

IMAGE="${1:-${SWARMD_TEST_IMAGE:-swarmd-busybox:latest}}"

log() { printf '[build-image] %s\n' "$*" >&2; }

if docker image inspect "${IMAGE}" >/dev/null 2>&1; then
    log "${IMAGE} present ($(docker image inspect --format '{{.Id}}' "${IMAGE}" | cut -c1-19))"
    exit 0
fi

BUSYBOX="${BUSYBOX:-/bin/busybox}"
if ! "${BUSYBOX}" --list >/dev/null 2>&1; then
    log "${BUSYBOX} is missing or has no applet list; install busybox-static (make docker)"
    exit 1
fi
if ldd "${BUSYBOX}" >/dev/null 2>&1; then
    log "${BUSYBOX} is dynamically linked; the image needs busybox-static"
    exit 1
fi

workdir="$(mktemp -d)"
trap 'rm -rf "${workdir}"' EXIT
root="${workdir}/rootfs"
mkdir -p "${root}"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,var/run}
chmod 1777 "${root}/tmp"
cp "${BUSYBOX}" "${root}/bin/busybox"
while IFS= read -r applet; do
    if [ -z "${applet}" ] || [ "${applet}" = busybox ]; then
        continue
    fi
    ln -sf busybox "${root}/bin/${applet}"
done < <("${BUSYBOX}" --list)
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
    >"${root}/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"${root}/etc/group"

tar -C "${root}" --numeric-owner -cf "${workdir}/rootfs.tar" .
docker import \
    --change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
    --change 'CMD ["sh"]' \
    --change 'LABEL org.opencontainers.image.title=swarmd-busybox' \
    --message 'swarmd test image: static busybox' \
    "${workdir}/rootfs.tar" "${IMAGE}" >/dev/null
log "built ${IMAGE} ($(docker image inspect --format '{{.Id}}' "${IMAGE}" | cut -c1-19))"
