#!/usr/bin/env bash
# Makes a local base image with `docker import`, for machines that cannot pull the official ones.
#
#   docker/build-local-base.sh           dynamo-ts/node-base:24-local, the runtime base (stands in
#                                        for node:24-slim): this machine's Node 24 binary, the
#                                        shared libraries it and the classic-level addon link
#                                        against, and a non-root `node` user (uid/gid 1000, as in
#                                        the official image). No shell, no package manager.
#   docker/build-local-base.sh --build   dynamo-ts/node-build-base:24-local, the build base of the
#                                        source build (stands in for node:24): the same, plus this
#                                        machine's npm (npm, npx), /bin/sh and /usr/bin/env (npm
#                                        scripts and `#!/usr/bin/env node` launchers need them), the
#                                        libraries of the native addons the build loads (Nx), and
#                                        this machine's CA bundle as NODE_EXTRA_CA_CERTS, so npm
#                                        trusts the same registry (or TLS proxy) the host does.
#
# Idempotent: does nothing when the image exists and was made from the same Node (and npm).
#   FORCE=1 docker/build-local-base.sh   rebuilds it anyway
#   NODE_BIN=/path/to/node ...            packages another Node 24 binary
#   NPM_DIR=/path/to/npm ...              with --build: another npm package directory
set -euo pipefail

case "${1:-}" in
  "") build_base=0 ;;
  --build) build_base=1 ;;
  *) echo "usage: build-local-base.sh [--build]" >&2; exit 2 ;;
esac
if [[ "$build_base" == 1 ]]; then
  readonly BASE_TAG="${LOCAL_BUILD_BASE_IMAGE:-dynamo-ts/node-build-base:24-local}"
else
  readonly BASE_TAG="${LOCAL_BASE_IMAGE:-dynamo-ts/node-base:24-local}"
fi
readonly REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "build-local-base: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker CLI not found (run .ci/docker.sh or install docker.io)"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (is dockerd running?)"

node_bin="$(readlink -f "${NODE_BIN:-$(command -v node || true)}")"
[[ -x "$node_bin" ]] || die "no node binary found (set NODE_BIN)"
node_version="$("$node_bin" --version)"
[[ "$node_version" == v24.* ]] || die "need Node 24, $node_bin is $node_version"
# Identifies the binary the base was made from, so a Node upgrade on the host rebuilds it.
node_fingerprint="${node_version}-$(sha256sum "$node_bin" | cut -c1-16)"
if [[ "$build_base" == 1 ]]; then
  npm_dir="$(readlink -f "${NPM_DIR:-$(dirname "$(readlink -f "$(command -v npm || echo /nonexistent)")")/..}")"
  [[ -f "$npm_dir/bin/npm-cli.js" && -f "$npm_dir/package.json" ]] || die "no npm package directory found (set NPM_DIR)"
  npm_version="$("$node_bin" -p 'require(process.argv[1]).version' "$npm_dir/package.json")"
  node_fingerprint="${node_fingerprint}-npm${npm_version}"
fi

if [[ "${FORCE:-0}" != 1 ]]; then
  existing="$(docker image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$BASE_TAG" 2>/dev/null \
    | sed -n 's/^DYNAMO_BASE_NODE=//p' || true)"
  if [[ "$existing" == "$node_fingerprint" ]]; then
    echo "build-local-base: $BASE_TAG is up to date (node $node_version)"
    exit 0
  fi
fi

rootfs="$(mktemp -d "${TMPDIR:-/tmp}/dynamo-base-rootfs.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT

install -d -m 0755 "$rootfs"/{usr/local/bin,etc,home/node,app}
install -d -m 1777 "$rootfs/tmp"
chown 1000:1000 "$rootfs/home/node"
cp "$node_bin" "$rootfs/usr/local/bin/node"

# Every library the loader resolves for node and for the native addons shipped in node_modules
# (classic-level's linux-x64 glibc prebuild), copied under the path ldd reports, dereferenced.
copy_libs_of() {
  ldd "$1" | awk '/=> \//{print $3} /^[[:space:]]*\/[^ ]+ \(/{print $1}' | while read -r lib; do
    [[ -e "$rootfs$lib" ]] && continue
    install -d "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
}
copy_libs_of "$node_bin"
while IFS= read -r -d '' addon; do
  copy_libs_of "$addon"
done < <(find "$REPO_ROOT/node_modules" -path '*/prebuilds/linux-x64/*' -name '*.node' ! -name '*musl*' -print0 2>/dev/null)

if [[ "$build_base" == 1 ]]; then
  install -d -m 0755 "$rootfs"/{usr/local/lib/node_modules,usr/bin,bin,etc/ssl/certs}
  install -d -m 0700 "$rootfs/root"
  cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
  # As in the official image: the commands are links to npm's own launchers.
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  cp -L "$(command -v sh)" "$rootfs/bin/sh"
  cp -L "$(command -v env)" "$rootfs/usr/bin/env"
  copy_libs_of "$rootfs/bin/sh"
  copy_libs_of "$rootfs/usr/bin/env"
  # Native addons npm install brings for linux-x64 glibc (Nx's, among others).
  while IFS= read -r -d '' addon; do
    copy_libs_of "$addon"
  done < <(find "$REPO_ROOT/node_modules" -name '*.node' -path '*linux-x64*' ! -name '*musl*' -print0 2>/dev/null)
  ca_bundle="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
  [[ -r "$ca_bundle" ]] || die "no CA bundle at $ca_bundle (set NODE_EXTRA_CA_CERTS)"
  cp -L "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
fi
# glibc 2.34+ has files/dns lookups built in; these stubs keep older NSS configurations working.
for nss in libnss_files.so.2 libnss_dns.so.2; do
  for dir in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu; do
    if [[ -e "$dir/$nss" ]]; then install -d "$rootfs$dir"; cp -L "$dir/$nss" "$rootfs$dir/$nss"; break; fi
  done
done

cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/usr/sbin/nologin
node:x:1000:1000::/home/node:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
node:x:1000:
nogroup:x:65534:
EOF
echo 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"

# The binary must run inside the new root exactly as it will in a container.
if command -v chroot >/dev/null && [[ "$(id -u)" == 0 ]]; then
  chroot "$rootfs" /usr/local/bin/node -e 'process.exit(0)' \
    || die "node does not run inside the staged root filesystem (missing library?)"
  if [[ "$build_base" == 1 ]]; then
    chroot "$rootfs" /bin/sh -c 'npm --version && npx --version' >/dev/null \
      || die "npm does not run inside the staged root filesystem"
  fi
fi

extra_changes=()
if [[ "$build_base" == 1 ]]; then
  extra_changes=(--change "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt" --change "ENV NPM_VERSION=${npm_version}")
fi
tar -C "$rootfs" --numeric-owner -c . | docker import \
  --change "ENV PATH=/usr/local/bin:/usr/bin:/bin" \
  "${extra_changes[@]}" \
  --change "ENV NODE_VERSION=${node_version#v}" \
  --change "ENV DYNAMO_BASE_NODE=${node_fingerprint}" \
  --change 'CMD ["node"]' \
  --message "dynamo-ts local base: node ${node_version} from ${node_bin}${npm_version:+, npm ${npm_version}}" \
  - "$BASE_TAG" >/dev/null

docker run --rm "$BASE_TAG" node -e 'process.exit(process.version.startsWith("v24.") ? 0 : 1)' \
  || die "$BASE_TAG was imported but node does not run in it"
if [[ "$build_base" == 1 ]]; then
  docker run --rm "$BASE_TAG" sh -c 'npm --version >/dev/null' || die "$BASE_TAG was imported but npm does not run in it"
fi
echo "build-local-base: built $BASE_TAG (node $node_version${npm_version:+, npm $npm_version}, $(docker image inspect --format '{{.Size}}' "$BASE_TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
