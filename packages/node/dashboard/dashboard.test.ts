// The page's arithmetic, without a browser: reading the two request metrics out of a scrape,
// and the latency quantile between two scrapes (checked against a hand computation and, as a
// property, against the exact quantile of the observations, within one bucket).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseScrape, quantileBetween } from "./dashboard.js";

const SCRAPE = `# HELP dynamo_requests_total Requests by method and result.
# TYPE dynamo_requests_total counter
dynamo_requests_total{method="Get",code="ok"} 10
dynamo_requests_total{method="Get",code="not_found"} 2
dynamo_requests_total{code="ok",method="Put"} 5
dynamo_request_duration_seconds_bucket{method="Get",le="0.001"} 4
dynamo_request_duration_seconds_bucket{method="Get",le="0.01"} 10
dynamo_request_duration_seconds_bucket{method="Get",le="+Inf"} 12
dynamo_request_duration_seconds_sum{method="Get"} 0.5
dynamo_requests_total{method="Delete",code="ok"} NaN
other_metric{method="Get"} 100
dynamo_requests_total{method="Evil\\"quote",code="ok"} 1
`;

describe("parseScrape", () => {
  it("sums requests over codes per method and keeps cumulative buckets", () => {
    const s = parseScrape(SCRAPE, 1000);
    expect(Object.fromEntries(s.requests)).toEqual({ Get: 12, Put: 5, 'Evil\\"quote': 1 });
    expect([...s.buckets.get("Get")!]).toEqual([
      [0.001, 4],
      [0.01, 10],
      [Infinity, 12],
    ]);
  });
});

describe("quantileBetween", () => {
  it("interpolates inside the bucket holding the rank, over the difference of two scrapes", () => {
    const before = new Map([
      [0.001, 2],
      [0.01, 2],
      [Infinity, 2],
    ]);
    const after = new Map([
      [0.001, 6],
      [0.01, 10],
      [Infinity, 10],
    ]);
    // 8 new observations: 4 under 1 ms, 4 in (1, 10] ms. p50 = rank 4 → the top of the first bucket.
    expect(quantileBetween(before, after, 0.5)).toBeCloseTo(0.001, 9);
    // p75 = rank 6 → halfway through the second bucket.
    expect(quantileBetween(before, after, 0.75)).toBeCloseTo(0.0055, 9);
    expect(quantileBetween(after, after, 0.5)).toBeUndefined();
  });

  it("lands in the bucket of the exact quantile", () => {
    const bounds = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 1, Infinity];
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 2, noNaN: true }), { minLength: 1, maxLength: 200 }),
        fc.double({ min: 0.01, max: 0.99, noNaN: true }),
        (obs, q) => {
          const after = new Map(bounds.map((le) => [le, obs.filter((o) => o <= le).length]));
          const got = quantileBetween(undefined, after, q)!;
          const sorted = [...obs].sort((a, b) => a - b);
          const exact = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
          const bucket = (v: number) => bounds.findIndex((le) => v <= le);
          // An estimate at a bucket's upper bound belongs to that bucket or, at its edge, the next.
          expect([bucket(exact), bucket(exact) - 1]).toContain(bucket(got));
        },
      ),
    );
  });
});
