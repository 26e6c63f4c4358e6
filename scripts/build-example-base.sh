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
. "$(dirname "$0")/lib/debootstrap.sh"
debootstrap_rootfs build-example-base python3
root="$rootfs"
tar -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$image" >&2
echo "build-example-base: built $image" >&2
