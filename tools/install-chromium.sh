#!/usr/bin/env bash
# Installs Chromium for the browser e2e tests (tests/helpers/browser.ts drives it through
# playwright-core, which brings no browser of its own), idempotently:
#   1. MOONMIND_CHROMIUM_BIN, /usr/bin/chromium or a chromium on PATH is there (the order
#      tests/helpers/browser.ts looks in): nothing to do;
#   2. root with apt: apt-get install chromium (Debian's package; apt-get update only when the
#      install fails, e.g. on an image whose package lists were cleaned);
#   3. otherwise: says what to run and exits 78, like install-nats-server.sh.
# Prints the path of the binary to use on its last line.
set -euo pipefail

log() { printf 'install-chromium: %s\n' "$*" >&2; }

found() { # the first usable binary, or nothing
  local candidate
  for candidate in "${MOONMIND_CHROMIUM_BIN:-}" /usr/bin/chromium "$(command -v chromium || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if [ -n "${MOONMIND_CHROMIUM_BIN:-}" ] && [ ! -x "$MOONMIND_CHROMIUM_BIN" ]; then
  log "MOONMIND_CHROMIUM_BIN=$MOONMIND_CHROMIUM_BIN is not an executable; looking elsewhere"
fi

if bin="$(found)"; then
  echo "$bin"
  exit 0
fi

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
  cat >&2 <<MSG
install-chromium: no chromium found (on PATH or MOONMIND_CHROMIUM_BIN), and this script can only
install one as root on a Debian-based machine. Do one of:
  - as root: apt-get install --no-install-recommends chromium (Debian's package; Ubuntu's is a snap),
    or run this script again as root (sudo $0);
  - point MOONMIND_CHROMIUM_BIN at a Chromium or Chrome binary you already have.
MSG
  exit 78
fi

log "installing chromium with apt-get"
apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; }
if ! apt_install; then
  log "apt-get install failed; running apt-get update and trying again"
  apt-get update >/dev/null
  apt_install
fi

if ! bin="$(found)"; then
  log "apt-get installed chromium, but no chromium is on PATH ($PATH)"
  exit 1
fi
log "installed $("$bin" --version 2>/dev/null || echo chromium) at $bin"
echo "$bin"
