import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Credentials, parseTokensFile, TokensFileError, weakSecretReason } from "./credentials.js";

const SECRET = "credentials-test-secret-0123456789";
const headers = (h: Record<string, string>) => (name: string) => h[name];
const codeOf = (f: () => void): Code | "ok" => {
  try {
    f();
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
};

describe("parseTokensFile", () => {
  it("reads tokens, sha256 digests, roles, expiry and names; skips comments", () => {
    const hashed = createHash("sha256").update("hashed-token-0123456789").digest("hex");
    const entries = parseTokensFile(`# comment\n\nplain-token-0123456789 read,write name=app\nsha256:${hashed} admin expires=2030-01-01T00:00:00Z\n`);
    expect(entries.map((e) => [[...e.roles], e.name, e.expiresAt])).toEqual([
      [["read", "write"], "app", undefined],
      [["admin"], "line 4", Date.parse("2030-01-01T00:00:00Z")],
    ]);
  });

  it("names the line of anything it cannot read", () => {
    for (const [text, message] of [
      ["short read", /line 1: a token must be at least 16 characters/],
      ["long-enough-token-0123 superuser", /line 1: unknown role 'superuser'/],
      ["long-enough-token-0123", /line 1: expected TOKEN ROLES/],
      ["\nsha256:abc read", /line 2: sha256: must be followed by 64 hex digits/],
      ["long-enough-token-0123 read expires=tomorrow", /expires must be an ISO-8601 time/],
      ["long-enough-token-0123 read colour=red", /unknown option 'colour=red'/],
    ] as const) {
      expect(() => parseTokensFile(text)).toThrow(TokensFileError);
      expect(() => parseTokensFile(text)).toThrow(message);
    }
  });
});

describe("Credentials", () => {
  it("lets the secret do anything, and no one call admin methods without it or an admin token", () => {
    const c = new Credentials({ clusterSecret: SECRET, requireClientAuth: false });
    expect(codeOf(() => c.authorize(headers({ "x-dynamo-cluster-secret": SECRET }), "admin", "x"))).toBe("ok");
    expect(codeOf(() => c.authorize(headers({ authorization: `Bearer ${SECRET}` }), "admin", "x"))).toBe("ok");
    expect(codeOf(() => c.authorize(headers({}), "admin", "x"))).toBe(Code.Unauthenticated);
    expect(codeOf(() => c.authorize(headers({ "x-dynamo-cluster-secret": `${SECRET}x` }), "admin", "x"))).toBe(Code.Unauthenticated);
    // Client auth off: the key API is open.
    expect(codeOf(() => c.authorize(headers({}), "write", "x"))).toBe("ok");
  });

  it("never lets a wrong secret or a malformed header through", () => {
    const c = new Credentials({ clusterSecret: SECRET, requireClientAuth: true });
    fc.assert(
      fc.property(fc.string(), fc.string(), (secret, auth) => {
        fc.pre(secret !== SECRET && !auth.includes(SECRET));
        expect(c.isInternal(headers({ "x-dynamo-cluster-secret": secret, authorization: auth }))).toBe(false);
        expect(codeOf(() => c.authorize(headers({ "x-dynamo-cluster-secret": secret, authorization: auth }), "read", "x"))).not.toBe("ok");
      }),
    );
  });
});

describe("weakSecretReason", () => {
  it("refuses short, repetitive and one-character-heavy secrets, and accepts random ones", () => {
    expect(weakSecretReason("a".repeat(16))).toMatch(/16 characters/);
    expect(weakSecretReason("abcabcabcabcabcabcabcabcabc")).toMatch(/only 3 distinct/);
    expect(weakSecretReason(`abcdefgh${"z".repeat(20)}`)).toMatch(/more than a third/);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 64 }), (bytes) => {
        expect(weakSecretReason(Buffer.from(bytes).toString("hex").padEnd(32, "0123456789abcdef"))).toBeUndefined();
      }),
      { numRuns: 200, seed: 1 },
    );
  });
});
