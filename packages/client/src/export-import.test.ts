// The NDJSON line codec of `dynamo export` / `dynamo import`: valid lines round-trip exactly, and
// any other text (random, or a valid line damaged) gives an ExportLineError naming its line,
// never another exception.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeExportLine, encodeExportLine, type ExportLine, ExportLineError } from "./export-import.js";

const SEED = 20_240_607;
const bytes = fc.uint8Array({ maxLength: 40 }).map((b) => new Uint8Array(b));
const contentType = fc.constantFrom(undefined, "text/plain", "application/json; charset=utf-8", "a");
const value = fc.record({ value: bytes, contentType }).map(({ value, contentType }) => (contentType === undefined ? { value } : { value, contentType }));
const key = fc.string({ minLength: 1, maxLength: 20, unit: "binary" }).filter((k) => k.isWellFormed());
const exportLine: fc.Arbitrary<ExportLine> = fc
  .record({
    key,
    deleted: fc.boolean(),
    siblings: fc.array(value, { minLength: 1, maxLength: 4 }),
    context: bytes,
    record: fc.uint8Array({ minLength: 1, maxLength: 60 }),
  })
  .map((l) => ({ ...l, siblings: l.deleted ? [] : l.siblings, record: new Uint8Array(l.record) }));

/** Decodes `text` as line `line`: the line, or the ExportLineError; any other exception fails the test. */
function attempt(text: string, line: number): ExportLine | ExportLineError {
  try {
    return decodeExportLine(text, line);
  } catch (err) {
    if (!(err instanceof ExportLineError)) throw new Error(`decodeExportLine threw ${String(err)} for ${JSON.stringify(text)}`, { cause: err });
    expect(err.line).toBe(line);
    expect(err.message).toBe(`line ${line}: ${err.reason}`);
    return err;
  }
}

describe("export line codec", () => {
  it("round-trips every valid line exactly, as one line of JSON", () => {
    fc.assert(
      fc.property(exportLine, fc.integer({ min: 1, max: 1e9 }), (line, n) => {
        const text = encodeExportLine(line);
        expect(text.endsWith("\n")).toBe(true);
        expect(text.slice(0, -1)).not.toMatch(/[\n\r]/);
        expect(decodeExportLine(text.slice(0, -1), n)).toEqual(line);
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it("writes the fields in a fixed order, contentType only when there is one", () => {
    const text = encodeExportLine({
      key: "cart",
      siblings: [{ value: new TextEncoder().encode("apples"), contentType: "text/plain" }, { value: new Uint8Array([0, 255]) }],
      deleted: false,
      context: new Uint8Array([1, 2]),
      record: new Uint8Array([3]),
    });
    expect(text).toBe(
      '{"key":"cart","siblings":[{"value":"YXBwbGVz","contentType":"text/plain"},{"value":"AP8="}],"deleted":false,"context":"AQI=","record":"Aw=="}\n',
    );
  });

  it("gives a typed error with the line number for any text that is not a valid line, never a crash", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: "binary" }),
          fc.json(),
          fc.jsonValue().map((v) => JSON.stringify(v)),
        ),
        fc.integer({ min: 1, max: 1e9 }),
        (text, n) => {
          attempt(text, n);
        },
      ),
      { seed: SEED + 1, numRuns: 2000 },
    );
  });

  it("refuses valid lines with one thing damaged: a character cut, added or replaced, a field changed", () => {
    const damage = fc.oneof(
      fc.record({ at: fc.nat(), kind: fc.constant("cut" as const), char: fc.constant("") }),
      fc.record({
        at: fc.nat(),
        kind: fc.constantFrom("add" as const, "replace" as const),
        char: fc.constantFrom('"', "{", "}", "[", "]", ",", ":", "\\", "=", "A", "0", "é", "\u0000", " "),
      }),
    );
    let refused = 0;
    fc.assert(
      fc.property(exportLine, damage, fc.integer({ min: 1, max: 1e6 }), (line, { at, kind, char }, n) => {
        const text = encodeExportLine(line).slice(0, -1);
        const i = at % (text.length + 1);
        const damaged =
          kind === "cut"
            ? text.slice(0, i) + text.slice(i + 1)
            : kind === "add"
              ? text.slice(0, i) + char + text.slice(i)
              : text.slice(0, i) + char + text.slice(i + 1);
        if (attempt(damaged, n) instanceof ExportLineError) refused++;
      }),
      { seed: SEED + 2, numRuns: 2000 },
    );
    // Most damage is caught; the rest still decodes to a well-formed line (e.g. a changed key).
    expect(refused).toBeGreaterThan(1000);
  });

  it("says what is wrong", () => {
    const valid = { key: "k", siblings: [{ value: "dg==" }], deleted: false, context: "", record: "AQ==" };
    const reason = (text: string) => (attempt(text, 7) as ExportLineError).reason;
    expect(reason("{")).toMatch(/^not JSON/);
    expect(reason("[1]")).toBe("the line must be a JSON object");
    expect(reason(JSON.stringify({ ...valid, extra: 1 }))).toBe('unknown field "extra"');
    expect(reason(JSON.stringify({ ...valid, record: undefined }))).toBe('missing field "record"');
    expect(reason(JSON.stringify({ ...valid, key: "" }))).toBe('"key" must be a non-empty string');
    expect(reason(JSON.stringify({ ...valid, key: "\ud800" }))).toMatch(/lone surrogate/);
    expect(reason(JSON.stringify({ ...valid, deleted: "no" }))).toBe('"deleted" must be true or false');
    expect(reason(JSON.stringify({ ...valid, deleted: true }))).toBe("a deleted key has no siblings, this one lists 1");
    expect(reason(JSON.stringify({ ...valid, siblings: [] }))).toBe("a key that is not deleted has at least one sibling");
    expect(reason(JSON.stringify({ ...valid, siblings: [{ value: "dg=" }] }))).toBe("siblings[0].value must be a base64 string");
    expect(reason(JSON.stringify({ ...valid, siblings: [{ value: "dg==", contentType: "" }] }))).toBe("siblings[0].contentType must be a non-empty string");
    expect(reason(JSON.stringify({ ...valid, siblings: [{ value: "dg==", type: "x" }] }))).toBe('siblings[0] has an unknown field "type"');
    expect(reason(JSON.stringify({ ...valid, record: "" }))).toBe('"record" is empty');
    expect(reason(JSON.stringify({ ...valid, context: "!!" }))).toBe('"context" must be a base64 string');
    expect(attempt(JSON.stringify(valid), 7)).toEqual({
      key: "k",
      siblings: [{ value: new TextEncoder().encode("v") }],
      deleted: false,
      context: new Uint8Array(),
      record: new Uint8Array([1]),
    });
  });
});
