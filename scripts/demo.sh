#!/usr/bin/env bash
# The main job: the full release cycle on the bundled demo app against the local Docker engine.
# Installs nginx (and Compose) when missing, builds davit, and runs `davit demo`; with
# `--strategy swarm` it builds the swarm proxy's image first (debootstrap, needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh demo
# The swarm story's proxy image is built here (nothing can be pulled): debootstrap + haproxy.
if [[ " $* " == *" swarm "* || " $* " == *" --strategy=swarm "* ]]; then
  command -v debootstrap >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap iptables >&2
  }
  scripts/build-swarm-proxy.sh
fi
cargo build --release --quiet -p davit
exec target/release/davit demo "$@"
