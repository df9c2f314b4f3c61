import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ReflectionIndex } from "./reflection.js";

const index = new ReflectionIndex();
const filesOf = (answer: ReturnType<ReflectionIndex["answer"]>) => {
  if (answer.case !== "fileDescriptorResponse") throw new Error(`not files: ${JSON.stringify(answer)}`);
  return answer.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
};

describe("ReflectionIndex", () => {
  it("finds the file of a service, a method and a message, imports first", () => {
    for (const symbol of ["dynamo.v1.KVService", "dynamo.v1.KVService.Put", "dynamo.v1.GetResponse", "dynamo.v1.AdminService.Status"]) {
      const files = filesOf(index.answer({ case: "fileContainingSymbol", value: symbol }));
      const names = files.map((f) => f.name);
      expect(new Set(names).size).toBe(names.length);
      // Every import of a file comes before it.
      files.forEach((f, i) => f.dependency.forEach((dep) => expect(names.slice(0, i)).toContain(dep)));
    }
    expect(filesOf(index.answer({ case: "fileByFilename", value: "dynamo/v1/kv.proto" })).at(-1)?.name).toBe("dynamo/v1/kv.proto");
  });

  it("answers unknown symbols, files and extensions with NOT_FOUND, never a throw", () => {
    for (const request of [
      { case: "fileContainingSymbol" as const, value: "dynamo.v1.ReplicaService" },
      { case: "fileContainingSymbol" as const, value: "no.such.Thing.Method" },
      { case: "fileByFilename" as const, value: "../../etc/passwd" },
      { case: "allExtensionNumbersOfType" as const, value: "nope" },
    ]) {
      const answer = index.answer(request);
      expect(answer.case).toBe("errorResponse");
      expect(answer.case === "errorResponse" && answer.value.errorCode).toBe(Code.NotFound);
    }
    expect(index.answer({ case: undefined, value: undefined }).case).toBe("errorResponse");
  });

  it("lists exactly the public services", () => {
    const answer = index.answer({ case: "listServices", value: "" });
    expect(answer.case === "listServicesResponse" && answer.value.service.map((s) => s.name)).toEqual(index.serviceNames);
    expect(index.serviceNames).not.toContain("dynamo.v1.ReplicaService");
  });
});
