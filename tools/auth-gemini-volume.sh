#!/usr/bin/env bash
# Logs the gemini CLI in on the login volume that workers mount, or checks it.
#
#   tools/auth-gemini-volume.sh [--local DIR] [--check | --sync SRC | --api-key]
#       on this machine (DIR defaults to the volume a worker here would use; ./var/auth/gemini for npm start)
#   tools/auth-gemini-volume.sh --compose [SERVICE] [same options]
#       inside a compose service's container, on its volume (default service: worker)
#
# It wraps `moonmind auth gemini`, which holds the logic; see `npx moonmind auth --help`.
set -euo pipefail
root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ "${1:-}" = "--compose" ]; then
  shift
  service="worker"
  if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then service="$1"; shift; fi
  exec docker compose run --rm -it --entrypoint moonmind "$service" auth gemini "$@"
fi
exec node "$root_dir/src/cli/bin.mjs" auth gemini "$@"
