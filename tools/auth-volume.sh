#!/usr/bin/env bash
# Logs an agent CLI in on the login volume that workers mount, or checks it.
#
#   tools/auth-volume.sh RUNTIME [--local DIR] [--check | --sync SRC | --api-key | --token]
#       on this machine (DIR defaults to the volume a worker here would use; ./var/auth/RUNTIME for npm start)
#   tools/auth-volume.sh RUNTIME --compose [SERVICE] [same options]
#       inside a compose service's container, on its volume (default service: RUNTIME-worker,
#       e.g. codex-worker; run from any directory: compose runs in this checkout, with its .env)
#
# RUNTIME is codex, claude or gemini (--token: claude only). tools/auth-<runtime>-volume.sh call
# this; it wraps `moonmind auth RUNTIME`, which holds the logic (see `npx moonmind auth --help`).
set -euo pipefail
root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runtime="${1:?usage: tools/auth-volume.sh codex|claude|gemini [options]}"
shift

if [ "${1:-}" = "--compose" ]; then
  shift
  service="${runtime}-worker"
  if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then service="$1"; shift; fi
  # A terminal for an interactive login; none when a key or token comes on stdin from a pipe.
  tty=()
  if [ -t 0 ] && [ -t 1 ]; then tty=(-t); fi
  cd "$root_dir"
  exec docker compose run --rm -i "${tty[@]}" --entrypoint moonmind "$service" auth "$runtime" "$@"
fi
exec node "$root_dir/src/cli/bin.mjs" auth "$runtime" "$@"
