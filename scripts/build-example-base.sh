#!/usr/bin/env bash
# Build the example shop's base image, a Debian bookworm minbase with python3, from a
# debootstrap rootfs imported into Docker. Images cannot be pulled where davit is developed, so
# this stands in for `python:3.12-slim`. Cached: does nothing when the image exists.
set -euo pipefail
image="davit-examples/python:bookworm"
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "build-example-base: $image exists" >&2
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || export PATH="$PATH:/usr/sbin"
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "build-example-base: debootstrap is missing; run scripts/install-deps.sh" >&2
  exit 3
fi
# The machine's own Debian mirror (deb822 sources or sources.list), else the default.
mirror="$(grep -hoE '^URIs: *http[^ ]+/debian$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | sed 's/^URIs: *//')"
[ -n "$mirror" ] || mirror="$(grep -hoE '^deb +http[^ ]+/debian ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')"
[ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
echo "build-example-base: debootstrap bookworm (minbase + python3 with its standard library) from $mirror" >&2
debootstrap --variant=minbase --include=python3 bookworm "$root" "$mirror" >&2
tar -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$image" >&2
echo "build-example-base: built $image" >&2
