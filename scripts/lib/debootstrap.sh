# Sourced by the scripts that build images from a debootstrap rootfs (images cannot be pulled
# where davit is developed). One place for finding debootstrap and the machine's Debian mirror.
#
# debootstrap_rootfs NAME PACKAGES: a Debian bookworm minbase with PACKAGES (comma-separated) in a
# new folder, left in $rootfs (removed when the script exits). NAME prefixes the messages.
debootstrap_rootfs() {
  local name="$1" packages="$2" mirror
  command -v debootstrap >/dev/null 2>&1 || export PATH="$PATH:/usr/sbin"
  if ! command -v debootstrap >/dev/null 2>&1; then
    echo "$name: debootstrap is missing; run scripts/install-deps.sh" >&2
    exit 3
  fi
  # The machine's own Debian mirror (deb822 sources or sources.list), else the default.
  mirror="$(grep -hoE '^URIs: *http[^ ]+/debian$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | sed 's/^URIs: *//')"
  [ -n "$mirror" ] || mirror="$(grep -hoE '^deb +http[^ ]+/debian ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')"
  [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
  rootfs="$(mktemp -d)"
  trap 'rm -rf "$rootfs"' EXIT
  echo "$name: debootstrap bookworm (minbase + $packages) from $mirror" >&2
  debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >&2
}
