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
. "$(dirname "$0")/lib/debootstrap.sh"
debootstrap_rootfs build-swarm-proxy haproxy
root="$rootfs"
# Only what HAProxy needs at run time; apt's lists and caches would just make the image bigger.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*
tar -C "$root" -c . | docker import \
  --change 'CMD ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]' - "$image" >&2
echo "build-swarm-proxy: built $image" >&2
