# MoonMind Runtime: one image for every actor (intake, ops, worker, viz; the command picks it).
#
#   docker build -t moonmind .                       # or: docker compose build
#   docker build --build-arg NODE_IMAGE=my/node:20 . # a machine without a registry (tools/base-images.sh)
#
# Runs the compiled JavaScript as the non-root user `moonmind` (uid 10001), which owns the login
# volumes' mount points: Claude refuses its unattended modes as root, and a volume mounted there
# the first time takes the mount point's owner. tini is PID 1 so a stop signal reaches the actor
# (which hands running jobs back) and zombies are reaped.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Few, large steps: on a copy-on-write-less storage driver (vfs) every layer is a full copy.
COPY . .
RUN npm ci --no-audit --no-fund --loglevel=error \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund --loglevel=error \
 && mkdir -p /out/app/src/cli /out/app/src/viz \
 && cp -a package.json node_modules dist /out/app/ \
 && cp src/cli/bin.mjs /out/app/src/cli/bin.mjs \
 && cp -a src/viz/page /out/app/src/viz/page

FROM ${NODE_IMAGE}
# git for workspaces, bubblewrap (+ setpriv from util-linux) for the agents' sandbox, ssh for
# git@ repositories, tini as init.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      git bubblewrap util-linux tini ca-certificates openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --home-dir /var/lib/moonmind --create-home --shell /usr/sbin/nologin moonmind \
 && mkdir -p /var/lib/codex-auth /var/lib/claude-auth /var/lib/gemini-auth /var/lib/moonmind/workspaces \
 && chown moonmind:moonmind /var/lib/codex-auth /var/lib/claude-auth /var/lib/gemini-auth /var/lib/moonmind/workspaces \
 && chmod 0700 /var/lib/codex-auth /var/lib/claude-auth /var/lib/gemini-auth \
 && ln -s /app/src/cli/bin.mjs /usr/local/bin/moonmind

ENV NODE_ENV=production \
    MOONMIND_DATA_DIR=/var/lib/moonmind \
    CODEX_VOLUME_PATH=/var/lib/codex-auth \
    CLAUDE_VOLUME_PATH=/var/lib/claude-auth \
    GEMINI_HOME=/var/lib/gemini-auth \
    PATH=/app/node_modules/.bin:$PATH
USER moonmind
WORKDIR /var/lib/moonmind

# Healthy = the actor is connected to NATS and serving (its health file, refreshed by a ping
# every 5 s), not merely a live process.
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=3 CMD ["moonmind", "health"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--max-semi-space-size=2", "/app/src/cli/bin.mjs"]
CMD ["worker"]

# Last: the application (root-owned, read-only to the actor and its agents). Every step after a
# large layer costs a full copy of it where the storage driver cannot share layers (vfs).
COPY --from=build /out/app /app
