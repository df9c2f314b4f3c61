// Connect-RPC service implementations: thin adapters from protobuf messages to the
// coordinator, the local replica and node state. Validation errors map to InvalidArgument,
// quorum failures to Unavailable / DeadlineExceeded (see coordinator.ts).
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import {
  AdminService,
  AntiEntropyService,
  GossipService,
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  KVService,
  reflectionV1,
  reflectionV1alpha,
  ReplicaService,
} from "@dynamo-ts/proto";
import { type AntiEntropy, antiEntropyService } from "../background/anti-entropy/index.js";
import { type AdminSources, adminService } from "./admin-service.js";
import { registerReflection } from "./reflection.js";
import { connectHeaders, type Credentials } from "./credentials.js";
import { requireInternal } from "./call-context.js";
import { type KvCall, KeyNotFound, type KvOperations } from "./kv-operations.js";
import type { MessageLimits } from "./message-limits.js";
import type { LocalReplica } from "../local/replica.js";
import { applyReplicaWrite, decodeRecord, type ForwardedWriteCoordinator, readReplicaRecord, serveReplicaStream } from "./replica-stream/server.js";
import { scanResponse } from "./export-import.js";

export { deadlineFor, MAX_TIMEOUT_MS, requireInternal } from "./call-context.js";

export interface ServiceState {
  readonly nodeId: string;
  readonly clusterSecret: string;
  readonly defaultTimeoutMs: number;
  /** KVService's methods (kv-operations.ts), shared with the lean unary path. */
  readonly kv: KvOperations;
  /** Takes the client writes other nodes forward on the replica stream. */
  readonly forwardedWrites?: ForwardedWriteCoordinator;
  readonly replica: LocalReplica;
  readonly antiEntropy: AntiEntropy;
  serving(): boolean;
  /** Ready for clients (observability/readiness.ts): what the health service reports for "" and KVService. */
  ready(): boolean;
  /** Fires when the node begins to stop; streams that would otherwise stay open end then. */
  readonly draining: AbortSignal;
  onServingChange(listener: () => void): () => void;
  gossip(message: Uint8Array): void;
  /** What AdminService reports and the actions it takes. */
  readonly admin: AdminSources;
  /** Who may call what (client tokens, the cluster secret). */
  readonly credentials: Credentials;
  /** Request size limits per kind of service. */
  readonly limits: MessageLimits;
}

/** KVService on connect-node's router: the same operations the lean unary path runs. */
export function registerKvService(router: ConnectRouter, kv: KvOperations, readMaxBytes: number): void {
  const callOf = (ctx: HandlerContext): KvCall => ({ header: connectHeaders(ctx.requestHeader), timeoutMs: () => ctx.timeoutMs(), signal: ctx.signal });
  router.service(
    KVService,
    {
      async get(req, ctx) {
        const answer = await kv.get(req, callOf(ctx));
        if (answer instanceof KeyNotFound) throw answer.toError();
        return answer;
      },
      put: (req, ctx) => kv.put(req, callOf(ctx)),
      delete: (req, ctx) => kv.delete(req, callOf(ctx)),
    },
    { readMaxBytes },
  );
}

export function registerServices(router: ConnectRouter, state: ServiceState): void {
  const { replica, clusterSecret, limits } = state;
  const internalLimits = { readMaxBytes: limits.internalReadMaxBytes };
  const controlLimits = { readMaxBytes: limits.controlReadMaxBytes };

  registerKvService(router, state.kv, limits.publicReadMaxBytes);

  router.service(
    ReplicaService,
    {
      async write(req, ctx) {
        requireInternal(ctx, clusterSecret);
        await applyReplicaWrite(replica, req);
        return {};
      },
      async read(req, ctx) {
        requireInternal(ctx, clusterSecret);
        return { record: await readReplicaRecord(replica, req) };
      },
      async *stream(requests, ctx) {
        requireInternal(ctx, clusterSecret);
        yield* serveReplicaStream(replica, requests, ctx.signal, state.draining, state.forwardedWrites);
      },
      async purge(req, ctx) {
        requireInternal(ctx, clusterSecret);
        if (req.key.length === 0) throw new ConnectError("key must not be empty", Code.InvalidArgument);
        return { purged: await replica.purge(req.key, req.record) };
      },
      async reset(req, ctx) {
        requireInternal(ctx, clusterSecret);
        if (req.key.length === 0) throw new ConnectError("key must not be empty", Code.InvalidArgument);
        return { replaced: await replica.reset(req.key, req.expected, decodeRecord(req.record)) };
      },
      async scan(req, ctx) {
        requireInternal(ctx, clusterSecret);
        return scanResponse(replica, req);
      },
    },
    internalLimits,
  );

  router.service(
    GossipService,
    {
      send(req, ctx) {
        requireInternal(ctx, clusterSecret);
        state.gossip(req.message);
        return {};
      },
    },
    internalLimits,
  );

  router.service(
    AntiEntropyService,
    antiEntropyService(state.antiEntropy, (ctx) => requireInternal(ctx, clusterSecret)),
    internalLimits,
  );

  const admin = adminService(state.admin);
  router.service(AdminService, admin, controlLimits);
  // Import carries records: registered again with the limits of messages between nodes (a later
  // registration of a path replaces the earlier one).
  router.rpc(AdminService.method.import, admin.import, internalLimits);

  // The whole node ("") and its public KV service follow readiness (enough members up for the
  // default quorum, as /readyz); the node-to-node services follow whether this node takes
  // replica traffic at all (started, stores writable), which is what peers probe: a node left
  // alone must still be seen as back by the others, or it could never stop being alone.
  registerReflection(router, controlLimits);

  const healthOf = (service: string): ServingStatus => {
    if (service !== "" && !KNOWN_SERVICES.has(service)) {
      throw new ConnectError(`unknown service ${service}`, Code.NotFound);
    }
    const up = service === "" || service === KVService.typeName ? state.ready() : state.serving();
    return up ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  router.service(
    Health,
    {
      check(req) {
        return { status: healthOf(req.service) };
      },
      async *watch(req, ctx) {
        let last = healthOf(req.service);
        yield { status: last };
        // Ends when the client goes away or the node stops (after reporting NOT_SERVING).
        const ended = () => ctx.signal.aborted || state.draining.aborted;
        while (!ended()) {
          await new Promise<void>((resolve) => {
            const done = () => {
              off();
              clearTimeout(tick);
              ctx.signal.removeEventListener("abort", done);
              state.draining.removeEventListener("abort", done);
              resolve();
            };
            const off = state.onServingChange(done);
            // Readiness also moves with membership, which does not announce itself here: look again each second.
            const tick = setTimeout(done, 1000);
            ctx.signal.addEventListener("abort", done, { once: true });
            state.draining.addEventListener("abort", done, { once: true });
          });
          const now = healthOf(req.service);
          if (now !== last && !ctx.signal.aborted) {
            last = now;
            yield { status: now };
          }
        }
      },
    },
    controlLimits,
  );
}

const KNOWN_SERVICES = new Set([
  KVService.typeName,
  ReplicaService.typeName,
  AdminService.typeName,
  GossipService.typeName,
  AntiEntropyService.typeName,
  Health.typeName,
  reflectionV1.ServerReflection.typeName,
  reflectionV1alpha.ServerReflection.typeName,
]);
