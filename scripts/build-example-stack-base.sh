#!/usr/bin/env bash
# Build the base image of the Django + Celery example (examples/django-celery): a Debian bookworm
# minbase from debootstrap, imported into Docker, with python3 and pip (the app's packages come from
# PyPI), PostgreSQL 15 and Redis (the example's services). Images cannot be pulled where davit is
# developed, so this one image stands in for python:3.11-slim, postgres:15 and redis:7.
#
# Cached: the image carries a label with the hash of its package list; when an image with that label
# exists nothing is built, so tests call this every run at no cost. Prints the image reference.
set -euo pipefail
image="davit-examples/stack-base:bookworm"
packages="python3,python3-pip,ca-certificates,postgresql,redis-server,procps"
want="$(printf '%s' "$packages" | sha256sum | cut -c1-16)"
have="$(docker image inspect --format '{{ index .Config.Labels "davit.example.packages" }}' "$image" 2>/dev/null || true)"
if [ "$have" = "$want" ]; then
  echo "build-example-stack-base: $image exists (packages $want)" >&2
  echo "$image"
  exit 0
fi
. "$(dirname "$0")/lib/debootstrap.sh"
debootstrap_rootfs build-example-stack-base "$packages"
root="$rootfs"
# Package installs start services through policy-rc.d in a chroot; none run in the image.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import \
  --change 'CMD ["/bin/bash"]' \
  --change "LABEL davit.example.packages=$want" \
  - "$image" >&2
echo "build-example-stack-base: built $image" >&2
echo "$image"
