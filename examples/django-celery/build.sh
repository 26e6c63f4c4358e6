#!/usr/bin/env bash
# Build the example's images: the debootstrap base (cached, scripts/build-example-stack-base.sh),
# the app's wheels from PyPI (cached in ./wheels), then the app image and the two service images.
#
#   examples/django-celery/build.sh [APP_TAG]    (default: latest)
#
# Prints the three image references. The service images are rebuilt only when their base changed
# (Docker's layer cache), so a test can call this every run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tag="${1:-latest}"
"$here/../../scripts/build-example-stack-base.sh" >/dev/null
# Wheels for the base's Python (Debian bookworm: CPython 3.11.2 on x86-64 glibc), whatever Python runs this script.
mkdir -p "$here/wheels"
if ! python3 -m pip download --quiet --disable-pip-version-check --dest "$here/wheels" \
    --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.11.2 \
    --implementation cp -r "$here/requirements.txt" >&2; then
  echo "build.sh: downloading the wheels from PyPI failed; check the network and requirements.txt" >&2
  exit 3
fi
docker build --quiet -t "davit-examples/postgres:15" "$here/services/postgres" >&2
docker build --quiet -t "davit-examples/redis:7" "$here/services/redis" >&2
docker build --quiet -t "davit-examples/django-celery:$tag" "$here" >&2
printf '%s\n' "davit-examples/django-celery:$tag" "davit-examples/postgres:15" "davit-examples/redis:7"
