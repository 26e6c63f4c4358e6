#!/usr/bin/env bash
# Build the swarm strategy's proxy image, HAProxy from Debian bookworm, from a debootstrap
# rootfs imported into Docker. Images cannot be pulled where davit is developed, so this stands
# in for the official `haproxy:2.6` image (what a user with a registry sets as
# swarm.proxy_image). Cached: does nothing when the image exists.
set -euo pipefail
image="${1:-davit/haproxy:bookworm}"
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "build-swarm-proxy: $image exists" >&2
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || export PATH="$PATH:/usr/sbin"
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "build-swarm-proxy: debootstrap is missing; run scripts/install-deps.sh" >&2
  exit 3
fi
# The machine's own Debian mirror (deb822 sources or sources.list), else the default.
mirror="$(grep -hoE '^URIs: *http[^ ]+/debian$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | sed 's/^URIs: *//')"
[ -n "$mirror" ] || mirror="$(grep -hoE '^deb +http[^ ]+/debian ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')"
[ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
echo "build-swarm-proxy: debootstrap bookworm (minbase + haproxy) from $mirror" >&2
debootstrap --variant=minbase --include=haproxy bookworm "$root" "$mirror" >&2
# Only what HAProxy needs at run time; apt's lists and caches would just make the image bigger.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*
tar -C "$root" -c . | docker import \
  --change 'CMD ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]' - "$image" >&2
echo "build-swarm-proxy: built $image" >&2
