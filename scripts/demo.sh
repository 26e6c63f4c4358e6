#!/usr/bin/env bash
# The main job: the full release cycle on the bundled demo app against the local Docker engine.
# Installs nginx (and Compose) when missing, builds davit, and runs `davit demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh demo
cargo build --release --quiet -p davit
exec target/release/davit demo "$@"
