#!/usr/bin/env bash
# Benchmark of actions/setup under act (docs/BENCHMARKS.md, "Action start-up"): how long the setup
# step takes cold (cargo build at the ref, what every job paid before the cache), warm (restored from
# the Actions cache, served by act's cache server) and prebuilt (the release archive downloaded over
# HTTP and checked against checksums.sha256), beside the job's real work (the example shop's gate).
#
# Usage: scripts/bench-setup.sh [--skip-cold BINS_DIR]
#   --skip-cold DIR  leave out the cold build and pack the release archive from DIR's binaries
# Needs act, node, zstd, python3 (pytest is pip-installed by the job, as in the example pipeline).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
skip_cold=""
if [ "${1:-}" = --skip-cold ]; then skip_cold="$(cd "$2" && pwd)"; fi
# act cannot fetch the pinned actions/cache here (no github.com): it runs the test stand-in under
# that pin (tests/fixtures/actions-cache-stand-in), against act's own cache server.
sha=27d5ce7f107fe9357f9df03efb73ab90386fccae # actions/cache v5.0.5, as pinned in actions/*/action.yml
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The action repository act resolves davit-dev/davit@v1 to: this commit's sources.
mkdir -p "$work/davit" "$work/actions-cache" "$work/shop" "$work/release"
git -C "$root" archive HEAD | tar -x -C "$work/davit"
cp -r "$root/tests/fixtures/actions-cache-stand-in/." "$work/actions-cache/"
cp -r "$root/examples/shop/." "$work/shop/"
rm -rf "$work/shop/.github"
mkdir -p "$work/shop/.github/workflows"
cat >"$work/shop/.github/workflows/bench.yml" <<'EOF'
name: bench
on: push
jobs:
  gate:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2 (act copies the local files)
      - name: Test tools
        run: python3 -m pip install --quiet pytest pytest-cov
      - id: setup
        uses: davit-dev/davit/actions/setup@v1
        with:
          source: ${{ vars.DAVIT_SOURCE || 'auto' }}
      - name: Keep the binaries for the prebuilt run
        env:
          DAVIT_BIN: ${{ steps.setup.outputs.bin-dir }}
        run: if [ -n "${BENCH_BINS:-}" ]; then mkdir -p "$BENCH_BINS" && cp "$DAVIT_BIN"/davit* "$BENCH_BINS"/; fi
      - uses: davit-dev/davit/actions/gate@v1
        with:
          coverage-min: "60"
EOF
(cd "$work/shop" && git init -q -b main && git add -A &&
  git -c user.email=bench@example.com -c user.name=bench commit -qm bench)

# One act run; prints "<what the setup step did>|<its seconds>|<gate step's duration>".
run() {
  local cache="$1"
  shift
  local log="$work/act-$RANDOM.log"
  (cd "$work/shop" && act push -P ubuntu-latest=-self-hosted --pull=false \
    -W .github/workflows/bench.yml \
    --local-repository "actions/cache@$sha=$work/actions-cache" \
    --local-repository "davit-dev/davit@v1=$work/davit" \
    --cache-server-addr 127.0.0.1 --cache-server-path "$cache" "$@") >"$log" 2>&1 || {
    tail -50 "$log" >&2
    echo "bench-setup: the act run failed (log above)" >&2
    exit 1
  }
  local setup step gate
  setup="$(sed -n 's/.*davit setup: \(.*\) in \([0-9.]*\) s (.*/\1|\2/p' "$log" | head -1)"
  step="$(sed -n 's/.*Success - Main davit-dev\/davit\/actions\/setup@v1 \[\(.*\)\].*/\1/p' "$log" | head -1)"
  gate="$(sed -n 's/.*Success - Main davit-dev\/davit\/actions\/gate@v1 \[\(.*\)\].*/\1/p' "$log" | head -1)"
  if [ -n "${BENCH_KEEP_LOGS:-}" ]; then cp "$log" "$BENCH_KEEP_LOGS/"; fi
  echo "$setup|$step|$gate"
}

row() { # name, result
  IFS='|' read -r what secs step gate <<<"$2"
  if [ -z "$secs" ]; then exit 1; fi
  printf '| %s | %s | %s s | %s | %s |\n' "$1" "$what" "$secs" "$step" "$gate"
}

echo "| run | what setup did | setup says (restore + install) | whole setup step with cache save (act) | gate's real work (act) |"
echo "|---|---|---:|---:|---:|"
bins="$work/bins"
if [ -z "$skip_cold" ]; then
  row "cold (no cache, no release: cargo build)" \
    "$(run "$work/cache-a" --var DAVIT_SOURCE=build --env "BENCH_BINS=$bins")"
  row "warm (Actions cache restore)" "$(run "$work/cache-a" --var DAVIT_SOURCE=build)"
else
  bins="$skip_cold"
fi

# Prebuilt: the binaries packed as the release workflow packs them, served over HTTP, their
# checksum committed in the action copy's checksums.sha256, and an empty cache.
archive=davit-x86_64-unknown-linux-gnu.tar.gz
tar -czf "$work/release/$archive" -C "$bins" davit davit-gate davit-image davit-approve davit-verify
(cd "$work/release" && sha256sum "$archive") >"$work/davit/actions/setup/checksums.sha256"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/release" >/dev/null 2>&1 &
server_pid=$!
sleep 1
size="$(du -m "$work/release/$archive" | cut -f1)"
row "prebuilt (${size} MB archive over HTTP + sha256)" \
  "$(run "$work/cache-b" --env "DAVIT_SETUP_RELEASE_URL=http://127.0.0.1:$port")"
row "warm after prebuilt (Actions cache restore)" \
  "$(run "$work/cache-b" --env "DAVIT_SETUP_RELEASE_URL=http://127.0.0.1:$port")"
