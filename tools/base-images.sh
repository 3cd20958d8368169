#!/usr/bin/env bash
# The base images the Dockerfile and docker-compose.yaml name (node:20-bookworm-slim, nats:2.10):
# pulled when a registry answers; otherwise stand-ins built here from Debian's archive, for
# machines with no registry. Prints the variables that make the build and compose use them:
#
#   eval "$(tools/base-images.sh)"   # NODE_IMAGE=..., NATS_IMAGE=...
#
# The stand-ins are shaped like the official images where the project relies on it: node and npm
# in /usr/local, a `node` user 1000; nats-server at /nats-server as the entrypoint. Node is this
# machine's own (the version the suite runs on), with this machine's CA bundle (a registry reached
# through a TLS proxy); nats-server is tools/install-nats-server.sh's.
set -euo pipefail
root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/lib/debian-package.sh
. "$root_dir/tools/lib/debian-package.sh"

NODE_IMAGE="${NODE_IMAGE:-node:20-bookworm-slim}"
NATS_IMAGE="${NATS_IMAGE:-nats:2.10}"
LOCAL_DEBIAN="moonmind-local/debian:bookworm"
LOCAL_NODE="moonmind-local/node:20-bookworm-slim"
LOCAL_NATS="moonmind-local/nats:2.10"

log() { printf 'base-images: %s\n' "$*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }
pulled() { have "$1" || timeout 60 docker pull -q "$1" >/dev/null 2>&1; }

if pulled "$NODE_IMAGE" && pulled "$NATS_IMAGE"; then
  log "using $NODE_IMAGE and $NATS_IMAGE"
  printf 'export NODE_IMAGE=%q NATS_IMAGE=%q\n' "$NODE_IMAGE" "$NATS_IMAGE"
  exit 0
fi
log "no registry answered for $NODE_IMAGE / $NATS_IMAGE: building stand-ins from Debian's archive"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! have "$LOCAL_DEBIAN"; then
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
  log "debootstrap bookworm (minbase) from $(debian_mirror)"
  debootstrap --variant=minbase bookworm "$work/rootfs" "$(debian_mirror)" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" -c . | docker import - "$LOCAL_DEBIAN" >/dev/null
  rm -rf "$work/rootfs"
fi

if ! have "$LOCAL_NODE"; then
  node_bin="$(command -v node)"
  npm_dir="$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)"
  mkdir -p "$work/node"
  cp "$node_bin" "$work/node/node"
  cp -a "$npm_dir" "$work/node/npm"
  # This machine's trust store: where the registry is reached through a TLS proxy, its CA is in
  # it, and the image build's `npm ci` needs it too (the official image would trust the registry).
  cp "${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}" "$work/node/host-ca.pem"
  cat >"$work/node/Dockerfile" <<DOCKERFILE
FROM $LOCAL_DEBIAN
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY host-ca.pem /usr/local/share/moonmind-host-ca.pem
ENV NODE_EXTRA_CA_CERTS=/usr/local/share/moonmind-host-ca.pem npm_config_cafile=/usr/local/share/moonmind-host-ca.pem
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
CMD ["node"]
DOCKERFILE
  log "building $LOCAL_NODE (node $("$node_bin" --version))"
  docker build -q -t "$LOCAL_NODE" "$work/node" >/dev/null
fi

if ! have "$LOCAL_NATS"; then
  nats_bin="$(bash "$root_dir/tools/install-nats-server.sh" 2>/dev/null | tail -n1)"
  mkdir -p "$work/nats"
  cp "$nats_bin" "$work/nats/nats-server"
  cat >"$work/nats/Dockerfile" <<DOCKERFILE
FROM $LOCAL_DEBIAN
COPY nats-server /nats-server
EXPOSE 4222 6222 8222
ENTRYPOINT ["/nats-server"]
CMD ["--config", "nats-server.conf"]
DOCKERFILE
  log "building $LOCAL_NATS ($("$nats_bin" --version))"
  docker build -q -t "$LOCAL_NATS" "$work/nats" >/dev/null
fi

printf 'export NODE_IMAGE=%q NATS_IMAGE=%q\n' "$LOCAL_NODE" "$LOCAL_NATS"
