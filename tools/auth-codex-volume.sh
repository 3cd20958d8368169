#!/usr/bin/env bash
# Logs the codex CLI in on a login volume that workers mount as CODEX_HOME.
#
#   tools/auth-codex-volume.sh [--local DIR]            device-code login (works headless: open the
#                                                        printed URL on any machine and enter the code)
#   tools/auth-codex-volume.sh [--local DIR] --api-key   read an API key from stdin instead
#   tools/auth-codex-volume.sh [--local DIR] --check     the worker's own preflight: codex login status
#   tools/auth-codex-volume.sh [--local DIR] --sync SRC  copy an existing login (SRC/auth.json) in
#
# DIR defaults to CODEX_VOLUME_PATH, else ./var/auth/codex (the volume of `npm start`).
# The codex binary is MOONMIND_CODEX_BIN, else `codex` on PATH, else node_modules/.bin/codex.
set -euo pipefail

root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${CODEX_VOLUME_PATH:-$root_dir/var/auth/codex}"
mode=login
src=""
while [ $# -gt 0 ]; do
  case "$1" in
    --local) dir="${2:?--local needs a directory}"; shift 2 ;;
    --check) mode=check; shift ;;
    --api-key) mode=api-key; shift ;;
    --sync) mode=sync; src="${2:?--sync needs the directory of an existing login}"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "auth-codex-volume: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

codex="${MOONMIND_CODEX_BIN:-}"
[ -n "$codex" ] || codex="$(command -v codex || true)"
[ -n "$codex" ] || { [ -x "$root_dir/node_modules/.bin/codex" ] && codex="$root_dir/node_modules/.bin/codex"; }
if [ -z "$codex" ]; then
  echo "auth-codex-volume: codex CLI not found: npm install @openai/codex, or set MOONMIND_CODEX_BIN" >&2
  exit 78
fi

mkdir -p "$dir"
chmod 700 "$dir"
export CODEX_HOME="$dir"
case "$mode" in
  check)
    if "$codex" login status </dev/null; then
      echo "codex login on $dir: passed"
    else
      echo "codex login on $dir: failed; run tools/auth-codex-volume.sh --local $dir" >&2
      exit 78
    fi
    ;;
  api-key)
    "$codex" login --with-api-key
    ;;
  sync)
    [ -f "$src/auth.json" ] || { echo "auth-codex-volume: no auth.json in $src" >&2; exit 2; }
    install -m 600 "$src/auth.json" "$dir/auth.json"
    echo "copied $src/auth.json to $dir"
    ;;
  login)
    "$codex" login --device-auth
    ;;
esac
