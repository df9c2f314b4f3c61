// gRPC server reflection (grpc.reflection.v1 and its older twin v1alpha, which grpcurl, Postman
// and `buf curl --reflect` still ask for), so that clients need no schema files. It describes the
// public services only: KVService, AdminService, gRPC health and reflection itself. The
// node-to-node services need the cluster secret and are not advertised.
//
// A reflection stream is bidirectional: one answer per request, in order. Requests per stream
// and the stream's life are bounded (a client cannot hold one open and busy forever).
import { type DescFile, type FileRegistry, createFileRegistry, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { type ConnectRouter, Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { AdminService, Health, KVService, reflectionV1, reflectionV1alpha } from "@dynamo-ts/proto";

/** Most requests one reflection stream may make; a client listing and describing everything needs a few dozen. */
export const MAX_REFLECTION_REQUESTS_PER_STREAM = 1000;

const ADVERTISED = [KVService, AdminService, Health, reflectionV1.ServerReflection, reflectionV1alpha.ServerReflection];

/** The request and answer shapes both versions share. */
type ReflectionRequest = reflectionV1.ServerReflectionRequest | reflectionV1alpha.ServerReflectionRequest;
type MessageRequest = ReflectionRequest["messageRequest"];
type MessageResponse =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: Array<{ name: string }> } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** What reflection knows: the advertised services' files and everything they import. */
export class ReflectionIndex {
  private readonly registry: FileRegistry;
  private readonly encoded = new Map<string, Uint8Array>();
  readonly serviceNames = ADVERTISED.map((s) => s.typeName).sort();

  constructor() {
    // Every advertised file and its imports, each registered with its imports resolved from the set.
    const files = new Map<string, DescFile>();
    const collect = (f: DescFile) => {
      if (files.has(f.name)) return;
      files.set(f.name, f);
      f.dependencies.forEach(collect);
    };
    ADVERTISED.forEach((s) => collect(s.file));
    const byProtoName = new Map([...files.values()].map((f) => [f.proto.name, f]));
    this.registry = createFileRegistry(...[...files.values()].map((f) => createFileRegistry(f.proto, (name) => byProtoName.get(name))));
  }

  /** The answer to one request (never throws: failures are error responses, as the protocol has it). */
  answer(request: MessageRequest): MessageResponse {
    switch (request.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: this.serviceNames.map((name) => ({ name })) } };
      case "fileByFilename": {
        const file = this.registry.getFile(request.value);
        return file ? this.files(file) : notFound(`no file ${JSON.stringify(request.value)}`);
      }
      case "fileContainingSymbol": {
        const file = this.fileOfSymbol(request.value);
        return file ? this.files(file) : notFound(`no symbol ${JSON.stringify(request.value)}`);
      }
      case "fileContainingExtension":
        return notFound(
          `no extension ${request.value.extensionNumber} of ${JSON.stringify(request.value.containingType)}: these services define no extensions`,
        );
      case "allExtensionNumbersOfType":
        return this.registry.getMessage(request.value)
          ? { case: "allExtensionNumbersResponse", value: { baseTypeName: request.value, extensionNumber: [] } }
          : notFound(`no message type ${JSON.stringify(request.value)}`);
      default:
        return { case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "the request names no message_request" } };
    }
  }

  private fileOfSymbol(symbol: string): DescFile | undefined {
    const direct = this.registry.get(symbol);
    if (direct && "file" in direct) return direct.file;
    // A method: <package>.<Service>.<Method>
    const dot = symbol.lastIndexOf(".");
    if (dot > 0) {
      const service = this.registry.getService(symbol.slice(0, dot));
      if (service?.methods.some((m) => m.name === symbol.slice(dot + 1))) return service.file;
    }
    return undefined;
  }

  /** The file and, first, every file it imports, transitively: clients need them all. */
  private files(file: DescFile): MessageResponse {
    const ordered: DescFile[] = [];
    const seen = new Set<string>();
    const visit = (f: DescFile) => {
      if (seen.has(f.name)) return;
      seen.add(f.name);
      for (const dep of f.dependencies) visit(dep);
      ordered.push(f);
    };
    visit(file);
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: ordered.map((f) => this.encode(f)) } };
  }

  private encode(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file.name);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.encoded.set(file.name, bytes);
    }
    return bytes;
  }
}

function notFound(message: string): MessageResponse {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: message } };
}

/** The request echoed back, as plain fields (both versions' messages have the same shape, not the same type). */
function plainRequest(request: ReflectionRequest) {
  const m = request.messageRequest;
  const messageRequest =
    m.case === "fileContainingExtension" ? { case: m.case, value: { containingType: m.value.containingType, extensionNumber: m.value.extensionNumber } } : m;
  return { host: request.host, messageRequest };
}

/** One stream: an answer per request, up to the limit. */
async function* reflect(index: ReflectionIndex, requests: AsyncIterable<ReflectionRequest>, ctx: HandlerContext) {
  let count = 0;
  for await (const request of requests) {
    if (++count > MAX_REFLECTION_REQUESTS_PER_STREAM) {
      throw new ConnectError(`more than ${MAX_REFLECTION_REQUESTS_PER_STREAM} requests on one reflection stream: open another`, Code.ResourceExhausted);
    }
    if (ctx.signal.aborted) return;
    yield { validHost: request.host, originalRequest: plainRequest(request), messageResponse: index.answer(request.messageRequest) };
  }
}

export function registerReflection(router: ConnectRouter, options: { readMaxBytes: number }): void {
  const index = new ReflectionIndex();
  router.service(reflectionV1.ServerReflection, { serverReflectionInfo: (requests, ctx) => reflect(index, requests, ctx) }, options);
  router.service(reflectionV1alpha.ServerReflection, { serverReflectionInfo: (requests, ctx) => reflect(index, requests, ctx) }, options);
}
