#!/usr/bin/env bash
# A Docker engine for the compose tests (and for trying the compose deployment on one machine):
# uses the one DOCKER_HOST already reaches, or installs Debian's docker.io and starts dockerd by
# hand on the vfs driver under a data root of its own. Also installs the compose v2 plugin when
# `docker compose` is missing, and builds stand-ins for the official base images when no image
# registry can be reached (see tools/base-images.sh).
#
#   eval "$(tools/docker-engine.sh start [DIR])"   # prints DOCKER_HOST, DOCKER_CONFIG, MOONMIND_DOCKER_DIR
#   tools/docker-engine.sh stop [DIR]               # stops the daemon it started and removes DIR
#   tools/docker-engine.sh compose                   # only the compose plugin, under .tools/docker
#
# DIR defaults to a new temporary directory. Needs root and apt-get when it must install or start
# the engine; a reachable DOCKER_HOST needs neither.
set -euo pipefail
root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/lib/debian-package.sh
. "$root_dir/tools/lib/debian-package.sh"

log() { printf 'docker-engine: %s\n' "$*" >&2; }
COMPOSE_SUITE="${MOONMIND_COMPOSE_DEBIAN_SUITE:-trixie}"

need_root() {
  if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
    log "$1 needs root on a Debian-based machine; or point DOCKER_HOST at a running engine"
    exit 78
  fi
}

LOCAL_COMPOSE="$root_dir/.tools/docker/cli-plugins/docker-compose"

# The compose v2 plugin under .tools/ (a static binary; it also runs alone, as `docker-compose`).
install_compose() {
  [ -x "$LOCAL_COMPOSE" ] && return 0
  need_root "installing the compose v2 plugin"
  log "fetching compose v2 (docker-compose) from Debian $COMPOSE_SUITE"
  local unpacked
  unpacked="$(mktemp -d)"
  debian_package_unpack docker-compose "$COMPOSE_SUITE" "$unpacked"
  mkdir -p "$(dirname "$LOCAL_COMPOSE")"
  cp "$unpacked/usr/libexec/docker/cli-plugins/docker-compose" "$LOCAL_COMPOSE"
  rm -rf "$unpacked"
}

ensure_compose() { # $1: the DOCKER_CONFIG the plugin must be found under
  if DOCKER_CONFIG="$1" docker compose version >/dev/null 2>&1; then return 0; fi
  install_compose
  mkdir -p "$1/cli-plugins"
  ln -sf "$LOCAL_COMPOSE" "$1/cli-plugins/docker-compose"
}

start() {
  local dir="${1:-}"
  if [ -n "${DOCKER_HOST:-}" ] && docker info >/dev/null 2>&1; then
    local config="${DOCKER_CONFIG:-$HOME/.docker}"
    ensure_compose "$config"
    log "using the engine at $DOCKER_HOST"
    printf 'export DOCKER_HOST=%q DOCKER_CONFIG=%q\n' "$DOCKER_HOST" "$config"
    return 0
  fi
  if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    need_root "installing docker.io"
    log "installing Debian's docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >&2
  fi
  [ -n "$dir" ] || dir="$(mktemp -d /tmp/moonmind-docker.XXXXXX)"
  mkdir -p "$dir/data" "$dir/exec" "$dir/config"
  if [ -d "$HOME/.docker/cli-plugins" ]; then cp -r "$HOME/.docker/cli-plugins" "$dir/config/" 2>/dev/null || true; fi
  ensure_compose "$dir/config"
  local sock="$dir/docker.sock"
  need_root "starting dockerd"
  # vfs works on any filesystem; no iptables: containers reach each other on the bridge, and
  # builds that need the npm registry use the host's network (`network: host`).
  setsid dockerd --storage-driver=vfs --iptables=false --ip6tables=false \
    --data-root "$dir/data" --exec-root "$dir/exec" --host "unix://$sock" --pidfile "$dir/dockerd.pid" \
    >"$dir/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 100); do
    if DOCKER_HOST="unix://$sock" docker info >/dev/null 2>&1; then
      log "dockerd is up (data root $dir/data, log $dir/dockerd.log)"
      printf 'export DOCKER_HOST=%q DOCKER_CONFIG=%q MOONMIND_DOCKER_DIR=%q\n' "unix://$sock" "$dir/config" "$dir"
      return 0
    fi
    sleep 0.1
  done
  log "dockerd did not answer within 10 s; its log ($dir/dockerd.log) ends:"
  tail -n 20 "$dir/dockerd.log" >&2 || true
  exit 1
}

stop() {
  local dir="${1:-${MOONMIND_DOCKER_DIR:-}}"
  [ -n "$dir" ] && [ -f "$dir/dockerd.pid" ] || { log "no daemon of ours to stop"; return 0; }
  local pid
  pid="$(cat "$dir/dockerd.pid")"
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # What dockerd leaves: its bridge and the containers' mounts under the data root.
  ip link delete docker0 2>/dev/null || true
  grep " $dir/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$dir"
  log "stopped dockerd $pid and removed $dir"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  compose) install_compose; echo "$LOCAL_COMPOSE" ;;
  *) echo "usage: tools/docker-engine.sh start [DIR] | stop [DIR] | compose" >&2; exit 2 ;;
esac
