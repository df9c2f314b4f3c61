#!/usr/bin/env bash
# Builds the node image (dynamo-ts/node:local) from the workspace's built dist/ folders.
#
#   1. stages docker/bundle/ (docker/stage-bundle.mjs): dist/ of the workspace packages the node
#      and CLI need + their production node_modules, as real copies, and docker/bundle/Dockerfile
#      (the runtime stage of docker/Dockerfile, reading the bundle from the build context);
#   2. picks the base image: $BASE_IMAGE when set; otherwise node:24-slim when it is already
#      present locally; otherwise the local base dynamo-ts/node-base:24-local (made by
#      docker/build-local-base.sh when missing), since no registry may be reachable;
#   3. builds docker/bundle/Dockerfile with the repository root as context, then checks that the image
#      loads every staged package (native addon included) and prints what it used.
#
# Environment: BASE_IMAGE (base to build on), IMAGE (tag, default dynamo-ts/node:local).
# Run `npx nx run-many -t build` first: this script packages what is built, it does not build
# (`docker compose build` builds the same image from sources instead, see docker/README.md).
set -euo pipefail

readonly REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly IMAGE="${IMAGE:-dynamo-ts/node:local}"
readonly OFFICIAL_BASE="node:24-slim"
readonly LOCAL_BASE="dynamo-ts/node-base:24-local"

die() { echo "build-image: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker CLI not found (run .ci/docker.sh or install docker.io)"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (is dockerd running?)"
cd "$REPO_ROOT"

# Packaging stale output would ship old code under a fresh tag: say so loudly.
newest_mtime() { find "$@" -type f -printf '%T@\n' 2>/dev/null | sort -n | tail -n 1; }
for pkg in packages/*; do
  [[ -d "$pkg/src" && -d "$pkg/dist" ]] || continue
  src_mtime="$(newest_mtime "$pkg/src" -name '*.ts' ! -name '*.test.ts')"
  dist_mtime="$(newest_mtime "$pkg/dist")"
  if [[ -n "$src_mtime" && -n "$dist_mtime" ]] && awk -v s="$src_mtime" -v d="$dist_mtime" 'BEGIN { exit !(s > d) }'; then
    echo "build-image: warning: $pkg/src changed after $pkg/dist was built (rebuild: npx nx run-many -t build)" >&2
  fi
done

node docker/stage-bundle.mjs

if [[ -n "${BASE_IMAGE:-}" ]]; then
  base="$BASE_IMAGE"
  why="BASE_IMAGE"
elif docker image inspect "$OFFICIAL_BASE" >/dev/null 2>&1; then
  base="$OFFICIAL_BASE"
  why="official image present locally"
else
  "$REPO_ROOT/docker/build-local-base.sh"
  base="$LOCAL_BASE"
  why="no $OFFICIAL_BASE locally and no registry assumed"
fi

build_log="$(mktemp "${TMPDIR:-/tmp}/dynamo-image-build.XXXXXX.log")"
trap 'rm -f "$build_log"' EXIT
previous_id="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
digest="$(cat docker/bundle/digest)"
# The label lets the e2e suites refuse an image older than the workspace it would test.
if ! docker build -f docker/bundle/Dockerfile --build-arg "BASE_IMAGE=$base" --label "org.dynamo-ts.build-inputs=$digest" \
  -t "$IMAGE" . >"$build_log" 2>&1; then
  tail -n 40 "$build_log" >&2
  die "docker build failed (base $base)"
fi

# The image must resolve every staged workspace package from /app, native addon included.
packages="$(cd docker/bundle/app/node_modules/@dynamo-ts && ls -1 | sed 's|^|@dynamo-ts/|' | paste -sd, -)"
docker run --rm --entrypoint node "$IMAGE" --input-type=module -e "
  for (const name of '$packages'.split(',')) await import(name);
" || die "$IMAGE does not load its packages ($packages)"

# The image this build replaced is untagged now; drop it unless a container still uses it.
current_id="$(docker image inspect --format '{{.Id}}' "$IMAGE")"
if [[ -n "$previous_id" && "$previous_id" != "$current_id" ]]; then
  docker image rm "$previous_id" >/dev/null 2>&1 || true
fi

size="$(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
echo "build-image: built $IMAGE on $base ($why), $size"
