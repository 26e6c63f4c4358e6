#!/usr/bin/env bash
# Every test, with the real components they need (Docker, nginx, PostgreSQL, ...) installed first.
# Formatting and lints are part of the test: CI fails on either.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
export PATH="$PATH:/usr/sbin:/sbin"
cargo fmt --all -- --check
# T05: the actions and workflows (ours and the example users copy) pass a static audit.
zizmor --offline --quiet actions .github examples/shop/.github
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The end-to-end suites run the davit binaries as a workflow would; cargo test does not build
# other packages' binaries, so build them first.
cargo build --workspace --bins --quiet
cargo test --workspace --no-fail-fast "$@"
