#!/usr/bin/env bash
# Generates the Python protobuf and gRPC stubs for proto/dynamo/v1/*.proto into OUT_DIR
# (default: examples/python/generated, which git ignores). Needs Debian's protobuf-compiler and
# protobuf-compiler-grpc (protoc and grpc_python_plugin); the example then runs with
# python3-grpcio and python3-protobuf:
#
#   examples/python/generate.sh /tmp/dynamo-py
#   PYTHONPATH=/tmp/dynamo-py /usr/bin/python3 examples/python/kv_example.py 127.0.0.1:7001
#
# The stubs land in OUT_DIR/dynamo/v1/ (kv_pb2.py, kv_pb2_grpc.py, ...), importable as
# `from dynamo.v1 import kv_pb2, kv_pb2_grpc` with OUT_DIR on PYTHONPATH.
set -euo pipefail

readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly PROTO_DIR="$(cd "$HERE/../../proto" && pwd)"
readonly OUT_DIR="${1:-$HERE/generated}"
readonly PLUGIN="${GRPC_PYTHON_PLUGIN:-$(command -v grpc_python_plugin || echo /usr/bin/grpc_python_plugin)}"

die() { echo "generate.sh: $*" >&2; exit 1; }
command -v protoc >/dev/null || die "protoc not found (apt-get install protobuf-compiler)"
[[ -x "$PLUGIN" ]] || die "grpc_python_plugin not found (apt-get install protobuf-compiler-grpc)"

mkdir -p "$OUT_DIR"
protoc -I "$PROTO_DIR" \
  --python_out="$OUT_DIR" \
  --grpc_python_out="$OUT_DIR" \
  --plugin=protoc-gen-grpc_python="$PLUGIN" \
  "$PROTO_DIR"/dynamo/v1/*.proto
echo "generate.sh: stubs for $(cd "$PROTO_DIR" && echo dynamo/v1/*.proto) in $OUT_DIR/dynamo/v1"
