#!/usr/bin/env bash
# Logs the gemini CLI in on its login volume, or checks it: see tools/auth-volume.sh for the options.
#   tools/auth-gemini-volume.sh [--local DIR | --compose [SERVICE]] [--check | --sync SRC | --api-key]
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/auth-volume.sh" gemini "$@"
