#!/usr/bin/env bash
# Install the davit binaries for this action's ref and put them on PATH (see action.yml).
# Every davit action calls this first; a second call in the same job finds them on PATH.
set -euo pipefail

bins=(davit davit-gate davit-image davit-approve davit-verify)
action_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$action_dir/../.." && pwd)"
ref="${DAVIT_ACTION_REF:-local}"
source="${DAVIT_SETUP_SOURCE:-auto}"

add_to_path() {
  local dir="$1"
  for b in "${bins[@]}"; do
    if [ ! -x "$dir/$b" ]; then
      echo "::error::davit setup: $dir/$b is missing; build all davit binaries (cargo build --release --workspace) or drop bin-dir" >&2
      exit 2
    fi
  done
  if [ -n "${GITHUB_PATH:-}" ]; then echo "$dir" >> "$GITHUB_PATH"; fi
  if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "bin-dir=$dir" >> "$GITHUB_OUTPUT"; fi
  echo "davit setup: using $dir" >&2
}

# Already set up earlier in this job.
if command -v davit-verify >/dev/null 2>&1 && [ -z "${DAVIT_SETUP_BIN_DIR:-}" ] && [ "$source" != build ]; then
  add_to_path "$(dirname "$(command -v davit-verify)")"
  exit 0
fi

if [ -n "${DAVIT_SETUP_BIN_DIR:-}" ]; then
  add_to_path "$DAVIT_SETUP_BIN_DIR"
  exit 0
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) target=x86_64-unknown-linux-gnu ;;
  Linux-aarch64) target=aarch64-unknown-linux-gnu ;;
  *) target="" ;;
esac
# A ref name becomes a directory name: keep it to safe characters.
safe_ref="$(printf '%s' "$ref" | tr -c 'A-Za-z0-9._-' '_')"
cache="${RUNNER_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}}/davit/$safe_ref"
bin_dir="$cache/bin"

if [ -x "$bin_dir/davit" ]; then
  add_to_path "$bin_dir"
  exit 0
fi

archive="davit-$target.tar.gz"
expected=""
if [ -n "$target" ] && [ -f "$action_dir/checksums.sha256" ]; then
  expected="$(awk -v f="$archive" '$2 == f { print $1 }' "$action_dir/checksums.sha256")"
fi

if [ "$source" != build ] && [ -n "$expected" ]; then
  repo="${DAVIT_ACTION_REPOSITORY:-davit-dev/davit}"
  url="${GITHUB_SERVER_URL:-https://github.com}/$repo/releases/download/$ref/$archive"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "davit setup: downloading $url" >&2
  curl --fail --silent --show-error --location --retry 3 --output "$tmp/$archive" "$url"
  actual="$(sha256sum "$tmp/$archive" | cut -d' ' -f1)"
  if [ "$actual" != "$expected" ]; then
    echo "::error::davit setup: $archive has sha256 $actual, but checksums.sha256 at $ref says $expected; refusing to run it" >&2
    exit 3
  fi
  mkdir -p "$bin_dir"
  tar -xzf "$tmp/$archive" -C "$bin_dir"
  add_to_path "$bin_dir"
  exit 0
fi

if [ "$source" = release ]; then
  echo "::error::davit setup: no release archive for $target at $ref (checksums.sha256 has no entry); use source: build or a released tag" >&2
  exit 2
fi

echo "davit setup: no release archive for this ref; building from source with cargo (source: $source)" >&2
if ! command -v cargo >/dev/null 2>&1; then
  echo "::error::davit setup: cargo is not installed; install Rust (dtolnay/rust-toolchain) before davit actions, or use a released tag" >&2
  exit 2
fi
export CARGO_TARGET_DIR="$cache/target"
cargo build --release --locked --manifest-path "$repo_root/Cargo.toml" \
  -p davit -p davit-gate -p davit-image -p davit-approve -p davit-verify >&2
mkdir -p "$bin_dir"
for b in "${bins[@]}"; do cp "$CARGO_TARGET_DIR/release/$b" "$bin_dir/"; done
add_to_path "$bin_dir"
