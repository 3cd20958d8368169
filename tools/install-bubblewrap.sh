#!/usr/bin/env bash
# Installs bubblewrap (bwrap), the agent sandbox of MoonMind Runtime (src/runtimes/sandbox.ts),
# idempotently:
#   1. bwrap already runs a PID-namespace sandbox here: nothing to do;
#   2. root with apt: apt-get install bubblewrap (Debian's package);
#   3. otherwise: says how to install it and exits 0, so machines without root still work
#      (MOONMIND_AGENT_SANDBOX=auto then runs agents without the sandbox, and says so).
set -euo pipefail

log() { printf 'install-bubblewrap: %s\n' "$*" >&2; }

works() { # the flags that matter: a PID namespace, its own /proc, dying with its parent
  bwrap --ro-bind / / --unshare-pid --die-with-parent --proc /proc --dev /dev --tmpfs /tmp true 2>/dev/null
}

if command -v bwrap >/dev/null; then
  if works; then
    log "$(bwrap --version) works"
    exit 0
  fi
  # Installed but refused: the kernel or a container's confinement, not something apt can fix.
  log "bwrap is installed but cannot create its namespaces here:"
  bwrap --ro-bind / / --unshare-pid --proc /proc true 2>&1 | sed 's/^/  /' >&2 || true
  log "allow user namespaces (sysctl kernel.unprivileged_userns_clone=1, kernel.apparmor_restrict_unprivileged_userns=0)"
  log "or, in a container, relax seccomp/AppArmor for it; or set MOONMIND_AGENT_SANDBOX=none"
  exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  log "installing bubblewrap with apt-get"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bubblewrap >/dev/null; then
    apt-get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bubblewrap >/dev/null
  fi
  if works; then log "$(bwrap --version) installed and works"; else log "bwrap installed, but it cannot create its namespaces here"; fi
  exit 0
fi

log "bwrap is not installed. Install it as root: apt-get install bubblewrap (Debian/Ubuntu),"
log "dnf install bubblewrap (Fedora), apk add bubblewrap (Alpine). Without it agents run unsandboxed."
exit 0
