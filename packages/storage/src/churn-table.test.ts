// ChurnTable: the Map operations storage and the replica stream use, on a null-prototype object.
import { describe, expect, it } from "vitest";
import { ChurnTable } from "./churn-table.js";

describe("ChurnTable", () => {
  it("sets, gets, replaces and deletes entries, counting them", () => {
    const table = new ChurnTable<{ n: number }>();
    expect(table.size).toBe(0);
    table.set("a", { n: 1 });
    table.set(7, { n: 2 });
    expect(table.size).toBe(2);
    expect(table.get("a")).toEqual({ n: 1 });
    expect(table.get(7)).toEqual({ n: 2 });
    expect(table.get("7")).toEqual({ n: 2 }); // integer keys are property keys, as "7"
    table.set("a", { n: 3 });
    expect(table.size).toBe(2);
    expect(table.get("a")).toEqual({ n: 3 });
    expect(table.delete("a")).toBe(true);
    expect(table.delete("a")).toBe(false);
    expect(table.get("a")).toBeUndefined();
    expect(table.size).toBe(1);
    expect(table.values()).toEqual([{ n: 2 }]);
    table.clear();
    expect(table.size).toBe(0);
    expect(table.values()).toEqual([]);
  });

  it("takes any string as a key, including the names of Object.prototype's members", () => {
    const table = new ChurnTable<string>();
    for (const key of ["__proto__", "constructor", "toString", "hasOwnProperty", "", "a/b", "é"]) {
      expect(table.get(key)).toBeUndefined();
      table.set(key, `v:${key}`);
    }
    expect(table.size).toBe(7);
    expect(table.get("__proto__")).toBe("v:__proto__");
    expect(table.get("constructor")).toBe("v:constructor");
    expect(table.delete("__proto__")).toBe(true);
    expect(table.get("__proto__")).toBeUndefined();
    expect(table.size).toBe(6);
  });

  it("refuses undefined as a value (it would read as absent)", () => {
    const table = new ChurnTable<string | undefined>();
    expect(() => table.set("k", undefined)).toThrow(TypeError);
    expect(table.size).toBe(0);
  });

  it("keeps its count right under many insertions and deletions", () => {
    const table = new ChurnTable<number>();
    const live = new Set<number>();
    for (let id = 0; id < 20_000; id++) {
      table.set(id, id);
      live.add(id);
      if (id % 3 !== 0) {
        const old = id - 5;
        if (live.delete(old)) expect(table.delete(old)).toBe(true);
      }
    }
    expect(table.size).toBe(live.size);
    expect(table.values().sort((a, b) => a - b)).toEqual([...live].sort((a, b) => a - b));
  });
});
