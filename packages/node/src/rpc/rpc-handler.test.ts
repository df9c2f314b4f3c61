import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { clampTimeoutHeaders, isBase64, isMisreportedInputError } from "./rpc-handler.js";

describe("rpc handler corrections", () => {
  it("clamps timeout headers past the longest deadline and leaves others alone", () => {
    const h = new Headers({ "connect-timeout-ms": "2147483648", "grpc-timeout": "99999999H" });
    clampTimeoutHeaders(h, 600_000);
    expect([h.get("connect-timeout-ms"), h.get("grpc-timeout")]).toEqual(["600000", "600000m"]);
    const fine = new Headers({ "connect-timeout-ms": "1500", "grpc-timeout": "2S" });
    clampTimeoutHeaders(fine, 600_000);
    expect([fine.get("connect-timeout-ms"), fine.get("grpc-timeout")]).toEqual(["1500", "2S"]);
    const garbage = new Headers({ "connect-timeout-ms": "soon", "grpc-timeout": "1x" });
    clampTimeoutHeaders(garbage, 600_000);
    expect([garbage.get("connect-timeout-ms"), garbage.get("grpc-timeout")]).toEqual(["soon", "1x"]);
  });

  it("recognises connect's internal errors that are really bad input", () => {
    expect(isMisreportedInputError(Code.Internal, "parse binary: premature EOF")).toBe(true);
    expect(isMisreportedInputError("internal", "received compressed envelope, but do not know how to decompress")).toBe(true);
    expect(isMisreportedInputError("13", "invalid envelope, already compressed")).toBe(true);
    expect(isMisreportedInputError(Code.Internal, "internal error")).toBe(false);
    expect(isMisreportedInputError(Code.Unknown, "parse binary: x")).toBe(false);
  });

  it("accepts base64 as proto3 JSON does (standard or URL-safe, padded or not) and nothing else", () => {
    for (const ok of ["", "aGk=", "aGk", "aGVsbG8gd29ybGQ=", "-_8=", "AAAA"]) expect(isBase64(ok), ok).toBe(true);
    for (const bad of ["====", "a", "aGk==x", "a===", "!!!!", "aG k=", "aGk=="]) expect(isBase64(bad), bad).toBe(false);
  });
});
