#!/usr/bin/env python3
"""dynamo-ts from Python over plain gRPC: put, get, siblings resolved, delete, errors.

Uses Debian's python3-grpcio and python3-protobuf and stubs generated from proto/ by
examples/python/generate.sh (see docs/clients.md):

    examples/python/generate.sh /tmp/dynamo-py
    PYTHONPATH=/tmp/dynamo-py /usr/bin/python3 examples/python/kv_example.py 127.0.0.1:7001

The node address comes from the first argument, else $DYNAMO_NODE, else 127.0.0.1:7001.
--key names the keys it uses (KEY and KEY-cart); by default a fresh random name, so the
example can run again and again against the same cluster. Prints each step and exits 1 on
any answer it did not expect (2 on a usage error).
"""

import argparse
import os
import sys
import uuid

import grpc

try:
    from dynamo.v1 import kv_pb2, kv_pb2_grpc
except ImportError as error:  # the stubs are generated, not committed
    sys.exit(
        f"kv_example: cannot import the generated stubs ({error}); run "
        "examples/python/generate.sh OUT_DIR and set PYTHONPATH=OUT_DIR"
    )

# Deadline for every call and for connecting, in seconds (--timeout). gRPC sends it with each
# call; the node answers DEADLINE_EXCEEDED when its quorum is not reached in time.
TIMEOUT_S = 10.0


class Mismatch(Exception):
    """An answer the example did not expect."""


def check(condition, message):
    if not condition:
        raise Mismatch(message)


def values(response):
    """The sibling values of a GetResponse, sorted (the order of siblings carries no meaning)."""
    return sorted(sibling.value for sibling in response.siblings)


def expect_error(code, call, *args):
    """Runs a call that must fail with `code`; returns the server's message."""
    try:
        call(*args, timeout=TIMEOUT_S)
    except grpc.RpcError as error:
        check(error.code() == code, f"expected {code.name}, got {error.code().name}: {error.details()}")
        return error.details()
    raise Mismatch(f"expected {code.name}, but the call succeeded")


def run(kv, key):
    cart = f"{key}-cart"

    # 1. A blind put (no context) and a read back. The context is opaque bytes: keep it, send
    #    it back, never build or parse it.
    put = kv.Put(kv_pb2.PutRequest(key=key, value=b"hello", content_type="text/plain"), timeout=TIMEOUT_S)
    print(f"put {key} = b'hello' (text/plain): context {len(put.context)} bytes")
    got = kv.Get(kv_pb2.GetRequest(key=key), timeout=TIMEOUT_S)
    check(values(got) == [b"hello"], f"get {key}: expected [b'hello'], got {values(got)}")
    check(got.siblings[0].content_type == "text/plain", f"get {key}: content type {got.siblings[0].content_type!r}")
    print(f"get {key}: {values(got)} ({got.siblings[0].content_type})")

    # 2. Two puts without a context: neither saw the other, so both are kept as siblings.
    for value in (b"apples", b"pears"):
        kv.Put(kv_pb2.PutRequest(key=cart, value=value), timeout=TIMEOUT_S)
        print(f"put {cart} = {value!r} without a context (blind)")
    got = kv.Get(kv_pb2.GetRequest(key=cart), timeout=TIMEOUT_S)
    check(values(got) == [b"apples", b"pears"], f"get {cart}: expected 2 siblings, got {values(got)}")
    check(len(got.context) > 0, f"get {cart}: empty context")
    print(f"get {cart}: {len(got.siblings)} siblings {values(got)}, context {len(got.context)} bytes")

    # 3. Resolve: merge the siblings (here: join them) and write the result back WITH the
    #    context of that read. It replaces exactly the siblings the read returned.
    merged = b",".join(values(got))
    kv.Put(kv_pb2.PutRequest(key=cart, value=merged, context=got.context), timeout=TIMEOUT_S)
    print(f"resolved {cart}: put {merged!r} with the read's context")
    got = kv.Get(kv_pb2.GetRequest(key=cart), timeout=TIMEOUT_S)
    check(values(got) == [merged], f"get {cart}: expected [{merged!r}], got {values(got)}")
    print(f"get {cart}: 1 value {merged!r}")

    # 4. Delete with the context of the last read: a tombstone for exactly what was read.
    kv.Delete(kv_pb2.DeleteRequest(key=cart, context=got.context), timeout=TIMEOUT_S)
    print(f"deleted {cart} with the read's context")
    details = expect_error(grpc.StatusCode.NOT_FOUND, kv.Get, kv_pb2.GetRequest(key=cart))
    print(f"get {cart}: NOT_FOUND ({details})")

    # 5. Errors are gRPC status codes (docs/clients.md lists them).
    details = expect_error(grpc.StatusCode.INVALID_ARGUMENT, kv.Put, kv_pb2.PutRequest(key="", value=b"x"))
    print(f"put with an empty key: INVALID_ARGUMENT ({details})")
    forged = bytes(byte ^ 0xFF for byte in put.context)
    details = expect_error(grpc.StatusCode.INVALID_ARGUMENT, kv.Put, kv_pb2.PutRequest(key=key, value=b"x", context=forged))
    print(f"put with a forged context: INVALID_ARGUMENT ({details})")


def main():
    global TIMEOUT_S
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("node", nargs="?", default=os.environ.get("DYNAMO_NODE", "127.0.0.1:7001"), help="host:port of any node")
    parser.add_argument("--key", default=f"python-example-{uuid.uuid4().hex[:8]}", help="key to use (and KEY-cart)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per call and for connecting (default %(default)g)")
    args = parser.parse_args()
    TIMEOUT_S = args.timeout

    # The node serves gRPC over cleartext HTTP/2 on its one port: an insecure channel.
    with grpc.insecure_channel(args.node) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=TIMEOUT_S)
        except grpc.FutureTimeoutError:
            print(f"FAILED: cannot connect to {args.node} within {TIMEOUT_S:g}s", file=sys.stderr)
            return 1
        print(f"connected to {args.node}")
        try:
            run(kv_pb2_grpc.KVServiceStub(channel), args.key)
        except Mismatch as error:
            print(f"FAILED: {error}", file=sys.stderr)
            return 1
        except grpc.RpcError as error:
            print(f"FAILED: unexpected {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
