#!/usr/bin/env bash
# Installs nats-server >= 2.10 for MoonMind Runtime, idempotently.
#
# Order of preference:
#   1. a nats-server already on NATS_SERVER_BIN or PATH that is new enough: nothing to do;
#   2. the project-local copy under .tools/nats-server (made by an earlier run): nothing to do;
#   3. root with apt: fetch Debian trixie's nats-server .deb from Debian's own archive without
#      touching the system's apt sources, and unpack it into .tools/nats-server.
# Debian bookworm ships 2.9.10, which ignores term(reason) and mis-purges work queues, so it is
# treated as too old. Prints the path of the binary to use on its last line.
set -euo pipefail

MIN_VERSION="2.10.0"
SUITE="${NATS_SERVER_DEBIAN_SUITE:-trixie}"
root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${root_dir}/.tools/nats-server"
local_bin="${dest}/usr/sbin/nats-server"

log() { printf 'install-nats-server: %s\n' "$*" >&2; }

version_of() { # prints x.y.z or nothing
  { "$1" --version 2>/dev/null || true; } | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p' | head -n1
}

new_enough() { # version >= MIN_VERSION
  [ -n "$1" ] && [ "$(printf '%s\n%s\n' "$MIN_VERSION" "$1" | sort -V | head -n1)" = "$MIN_VERSION" ]
}

for candidate in "${NATS_SERVER_BIN:-}" "$local_bin" "$(command -v nats-server || true)"; do
  [ -n "$candidate" ] && [ -x "$candidate" ] || continue
  v="$(version_of "$candidate")"
  if new_enough "$v"; then
    log "nats-server $v at $candidate is new enough (>= $MIN_VERSION)"
    echo "$candidate"
    exit 0
  fi
  log "nats-server ${v:-?} at $candidate is older than $MIN_VERSION; looking further"
done

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
  cat >&2 <<MSG
install-nats-server: no nats-server >= $MIN_VERSION found, and this script can only install one
as root on a Debian-based machine. Do one of:
  - install nats-server $MIN_VERSION or newer from https://github.com/nats-io/nats-server/releases
    and put it on PATH, or point NATS_SERVER_BIN at it;
  - run this script again as root (sudo $0).
MSG
  exit 78
fi

# shellcheck source=tools/lib/debian-package.sh
. "${root_dir}/tools/lib/debian-package.sh"
log "fetching nats-server from Debian $SUITE"
debian_package_unpack nats-server "$SUITE" "$dest"
v="$(version_of "$local_bin")"
if ! new_enough "$v"; then
  log "unpacked Debian $SUITE's nats-server but it reports version '${v:-?}', older than $MIN_VERSION"
  exit 1
fi
log "installed nats-server $v at $local_bin"
echo "$local_bin"
