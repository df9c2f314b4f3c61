#!/usr/bin/env bash
# CI: makes Docker usable and builds the images the e2e suites run.
#   - installs Debian's docker.io and docker-compose when there is no usable `docker` CLI,
#   - starts dockerd when no engine answers, and waits for it (bounded),
#   - builds the local base (docker/build-local-base.sh) and the node image (docker/build-image.sh).
# Idempotent: each step is skipped when already done. Expects the workspace to be built
# (npx nx run-many -t build) so the image packages current dist/ output.
set -euo pipefail

readonly REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
readonly ENGINE_WAIT_SECONDS="${ENGINE_WAIT_SECONDS:-60}"

say() { echo "ci/docker: $*"; }
die() { echo "ci/docker: FAILED: $*" >&2; exit 1; }

as_root() {
  if [[ "$(id -u)" == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo -n "$@"
  else die "need root (or passwordless sudo) to run: $*"
  fi
}

has_compose() { command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1; }
if ! command -v docker >/dev/null || ! has_compose; then
  command -v apt-get >/dev/null || die "docker is missing and this is not a Debian/Ubuntu machine (no apt-get): install Docker and Compose"
  say "installing docker.io and docker-compose"
  as_root apt-get update -qq >/dev/null || die "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose >/dev/null \
    || die "apt-get install docker.io docker-compose failed"
fi

if ! docker info >/dev/null 2>&1; then
  if pgrep -x dockerd >/dev/null; then
    say "dockerd is running but not answering yet"
  else
    command -v dockerd >/dev/null || die "no engine answers and dockerd is not installed"
    say "starting dockerd (log: $DOCKERD_LOG)"
    as_root sh -c "nohup dockerd >>'$DOCKERD_LOG' 2>&1 &"
  fi
  for ((waited = 0; waited < ENGINE_WAIT_SECONDS; waited++)); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    [[ -r "$DOCKERD_LOG" ]] && tail -n 20 "$DOCKERD_LOG" >&2
    die "the Docker engine did not answer within ${ENGINE_WAIT_SECONDS}s (see $DOCKERD_LOG)"
  fi
fi
say "engine $(docker version --format '{{.Server.Version}}') ready"

"$REPO_ROOT/docker/build-local-base.sh"
"$REPO_ROOT/docker/build-image.sh"
