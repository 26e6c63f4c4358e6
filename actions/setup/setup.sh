#!/usr/bin/env bash
# Install the davit binaries for this action's ref and put them on PATH (see action.yml).
#
# Every davit action runs three steps of this around actions/cache, because a GitHub-hosted runner
# starts each job on a fresh machine and only the Actions cache outlives it:
#   setup.sh plan     decide whether the cache is needed and compute its key (step `plan`)
#   (actions/cache/restore puts a saved entry into $GITHUB_WORKSPACE/.davit-setup)
#   setup.sh install  verify and use the restored entry, else download the release archive
#                     (checked against checksums.sha256 committed at this ref), else build with
#                     cargo; leave a new entry in .davit-setup for actions/cache/save (step `setup`)
# Without a subcommand (outside Actions) it installs without the Actions cache.
#
# Nothing restored or downloaded runs before its checksum matched: a release archive is checked
# against checksums.sha256 at this ref (also when it comes from the cache), a built entry against
# the SHA256SUMS it was saved with. A mismatch is refused, and the binaries are fetched or built
# again.
set -euo pipefail

mode="${1:-install}"
bins=(davit davit-gate davit-image davit-approve davit-verify)
action_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$action_dir/../.." && pwd)"
ref="${DAVIT_ACTION_REF:-local}"
source="${DAVIT_SETUP_SOURCE:-auto}"
# A ref name becomes a directory name and part of a cache key: keep it to safe characters.
safe_ref="$(printf '%s' "$ref" | tr -c 'A-Za-z0-9._-' '_')"
# The directory actions/cache restores into and saves from. Relative to the workspace because
# the cache key's version covers the path text, and only a relative path is the same in every
# job (act's workspace and temp folders differ per job); removed again by the action's last step.
entry="${GITHUB_WORKSPACE:-$PWD}/.davit-setup"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
out() { if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "$1" >>"$GITHUB_OUTPUT"; fi; }
log() { echo "davit setup: $*" >&2; }

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) target=x86_64-unknown-linux-gnu ;;
  Linux-aarch64) target=aarch64-unknown-linux-gnu ;;
  *) target="" ;;
esac
archive="davit-$target.tar.gz"
expected=""
# The release that holds the archives: `# release: <tag>` in checksums.sha256 (the major tag v1
# moves to the commit that adds the file, after the release v1.x.y was published), else this ref.
release_tag="$ref"
if [ -n "$target" ] && [ -f "$action_dir/checksums.sha256" ]; then
  expected="$(awk -v f="$archive" '$2 == f { print $1 }' "$action_dir/checksums.sha256")"
  tag="$(sed -n 's/^# release: *\([A-Za-z0-9._-]*\) *$/\1/p' "$action_dir/checksums.sha256" | head -1)"
  if [ -n "$tag" ]; then release_tag="$tag"; fi
fi

# Binaries of an earlier davit step in this job, or the ones the workflow points at.
preinstalled() {
  if [ -n "${DAVIT_SETUP_BIN_DIR:-}" ]; then
    echo "$DAVIT_SETUP_BIN_DIR"
  elif [ "$source" != build ] && command -v davit-verify >/dev/null 2>&1; then
    dirname "$(command -v davit-verify)"
  fi
}

# The cache key: the action's ref, the runner's OS and architecture, and a digest of what decides
# the binaries at that ref (the lock file, the sources, the committed checksums, this script), so
# a moved tag such as v1 never restores the binaries of the commit it pointed at before.
cache_key() {
  local digest
  digest="$(
    cd "$repo_root"
    {
      find Cargo.lock Cargo.toml crates actions/setup -type f 2>/dev/null || true
    } | LC_ALL=C sort | xargs -r sha256sum | sha256sum | cut -c1-16
  )"
  echo "davit-setup-$safe_ref-${RUNNER_OS:-$(uname -s)}-${RUNNER_ARCH:-$(uname -m)}-$digest"
}

if [ "$mode" = plan ]; then
  out "started=$(now_ms)"
  rm -rf -- "$entry"
  if [ -n "$(preinstalled)" ]; then
    out "cache=false"
  else
    out "cache=true"
    out "key=$(cache_key)"
  fi
  exit 0
fi
[ "$mode" = install ] || {
  echo "::error::davit setup: unknown mode $mode (plan or install)" >&2
  exit 2
}

started="${DAVIT_SETUP_STARTED:-$(now_ms)}"

# Say what was done and how long it took, in the log and the step summary.
report() {
  local what="$1" dir="$2" ms secs
  ms=$(($(now_ms) - started))
  secs="$(printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)))"
  log "$what in $secs s ($dir)"
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    printf '**davit setup** (%s): %s in %s s\n\n' "$ref" "$what" "$secs" >>"$GITHUB_STEP_SUMMARY"
  fi
}

use_dir() {
  local dir="$1"
  for b in "${bins[@]}"; do
    if [ ! -x "$dir/$b" ]; then
      echo "::error::davit setup: $dir/$b is missing; build all davit binaries (cargo build --release --workspace) or drop bin-dir" >&2
      exit 2
    fi
  done
  if [ -n "${GITHUB_PATH:-}" ]; then echo "$dir" >>"$GITHUB_PATH"; fi
  out "bin-dir=$dir"
}

pre="$(preinstalled)"
if [ -n "$pre" ]; then
  use_dir "$pre"
  report "used the binaries already installed" "$pre"
  exit 0
fi

# Where the binaries go: per job on a runner, a per-ref folder on a developer's machine.
if [ -n "${RUNNER_TEMP:-}" ]; then
  bin_dir="$RUNNER_TEMP/davit-setup-$safe_ref/bin"
else
  bin_dir="${XDG_CACHE_HOME:-$HOME/.cache}/davit/$safe_ref/bin"
  if [ -z "${GITHUB_ACTIONS:-}" ] && [ -x "$bin_dir/davit-verify" ]; then
    use_dir "$bin_dir"
    report "used the binaries installed before" "$bin_dir"
    exit 0
  fi
fi
rm -rf -- "$bin_dir"
mkdir -p "$bin_dir"

sha() { sha256sum "$1" | cut -d' ' -f1; }

# A restored entry is one of: the release archive (checked against checksums.sha256 at this ref)
# or built binaries with the SHA256SUMS they were saved with. Prints why it is refused.
check_entry() {
  if [ -f "$entry/$archive" ]; then
    if [ -z "$expected" ]; then
      echo "it holds $archive, but checksums.sha256 at $ref has no entry for it"
      return 1
    fi
    local actual
    actual="$(sha "$entry/$archive")"
    if [ "$actual" != "$expected" ]; then
      echo "$archive has sha256 $actual, but checksums.sha256 at $ref says $expected"
      return 1
    fi
    tar -xzf "$entry/$archive" -C "$bin_dir" "${bins[@]}" 2>&1 || return 1
    return 0
  fi
  if [ ! -f "$entry/SHA256SUMS" ]; then
    echo "it holds neither $archive nor SHA256SUMS"
    return 1
  fi
  local b want
  for b in "${bins[@]}"; do
    want="$(awk -v f="$b" '$2 == f { print $1 }' "$entry/SHA256SUMS")"
    if [ -z "$want" ] || [ ! -f "$entry/bin/$b" ] || [ "$(sha "$entry/bin/$b")" != "$want" ]; then
      echo "bin/$b does not match its SHA256SUMS line"
      return 1
    fi
    cp "$entry/bin/$b" "$bin_dir/$b"
    chmod +x "$bin_dir/$b"
  done
}

if [ "${DAVIT_SETUP_CACHE_HIT:-}" = true ]; then
  if why="$(check_entry)"; then
    use_dir "$bin_dir"
    rm -rf -- "$entry"
    report "restored from the Actions cache" "$bin_dir"
    exit 0
  fi
  echo "::warning::davit setup: refusing the cache entry (${why:-unreadable}); nothing from it runs. Downloading or building again; delete the entry with: gh cache delete $(cache_key)" >&2
  rm -rf -- "$bin_dir"
  mkdir -p "$bin_dir"
fi
# A miss (or a refused entry, or a partial restore) leaves nothing to trust in the entry folder.
rm -rf -- "$entry"
mkdir -p "$entry"

if [ "$source" != build ] && [ -n "$expected" ]; then
  repo="${DAVIT_ACTION_REPOSITORY:-davit-dev/davit}"
  # DAVIT_SETUP_RELEASE_URL: a mirror of the release downloads (runners without github.com);
  # the committed checksum is checked all the same.
  base="${DAVIT_SETUP_RELEASE_URL:-${GITHUB_SERVER_URL:-https://github.com}/$repo/releases/download/$release_tag}"
  url="$base/$archive"
  log "downloading $url"
  curl --fail --silent --show-error --location --retry 3 --output "$entry/$archive" "$url"
  actual="$(sha "$entry/$archive")"
  if [ "$actual" = "$expected" ]; then
    tar -xzf "$entry/$archive" -C "$bin_dir" "${bins[@]}"
    use_dir "$bin_dir"
    out "save=true"
    report "downloaded and verified the release archive" "$bin_dir"
    exit 0
  fi
  echo "::error::davit setup: $archive has sha256 $actual, but checksums.sha256 at $ref says $expected; refusing to run it" >&2
  rm -f -- "$entry/$archive"
  if [ "$source" = release ]; then exit 3; fi
  log "building from source at $ref instead (source: auto)"
elif [ "$source" = release ]; then
  echo "::error::davit setup: no release archive for $target at $ref (checksums.sha256 has no entry); use source: build or a released tag" >&2
  exit 2
else
  log "no release archive for this ref; building from source with cargo (source: $source)"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "::error::davit setup: cargo is not installed; install Rust (dtolnay/rust-toolchain) before davit actions, or use a released tag" >&2
  exit 2
fi
if [ ! -f "$repo_root/Cargo.lock" ]; then
  echo "::error::davit setup: the action at $ref has no sources to build (no Cargo.lock in $repo_root); use a released tag" >&2
  exit 2
fi
# CARGO_TARGET_DIR set by the workflow is kept (a self-hosted runner can share its builds).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${RUNNER_TEMP:-$(dirname "$bin_dir")}/davit-target}"
cargo build --release --locked --manifest-path "$repo_root/Cargo.toml" \
  -p davit -p davit-gate -p davit-image -p davit-approve -p davit-verify >&2
mkdir -p "$entry/bin"
for b in "${bins[@]}"; do
  cp "$CARGO_TARGET_DIR/release/$b" "$bin_dir/"
  cp "$CARGO_TARGET_DIR/release/$b" "$entry/bin/"
done
(cd "$entry/bin" && sha256sum "${bins[@]}") >"$entry/SHA256SUMS"
use_dir "$bin_dir"
out "save=true"
report "built from source with cargo" "$bin_dir"
