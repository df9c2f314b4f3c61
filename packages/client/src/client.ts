// Typed client for a dynamo-ts cluster over Connect, gRPC or gRPC-Web. Any node coordinates
// any key, so given several nodes the client spreads calls over them and fails over (see
// errors.ts for when a call may be sent again). Every failure is a DynamoError.
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  AdminService,
  type AntiEntropyStatusResponse,
  CLUSTER_SECRET_HEADER,
  KVService,
  type ListHintsResponse,
  type RepairKeyResponse,
  type RepairResponse,
  type StatusResponse,
} from "@dynamo-ts/proto";
import { DynamoError, type FailedAttempt, declined, mayRetry, noAnswer } from "./errors.js";
import { NodePool } from "./node-pool.js";
import { createDynamoTransport, type DynamoTransportOptions } from "./transport.js";

export interface DynamoClientOptions extends Omit<DynamoTransportOptions, "node"> {
  /** One node: `127.0.0.1:7001` or `http://127.0.0.1:7001`. Give `node` or `nodes`. */
  readonly node?: string;
  /** Several nodes: calls are spread over them round-robin and fail over (see the README). */
  readonly nodes?: readonly string[];
  /** Deadline of each attempt of a call, in ms; also sent to the node as timeout_ms. */
  readonly timeoutMs?: number;
  /** The cluster secret: operator calls (status, hints, repair, …) carry it. Or give an admin `token`. */
  readonly clusterSecret?: string;
  /** A bearer token from the cluster's tokens file: every call carries it (`Authorization: Bearer`). */
  readonly token?: string;
  /** How long a node that gave no answer is passed over, in ms (default 1000). */
  readonly backoffMs?: number;
}

export interface CallOptions {
  /** Deadline of each attempt, in ms (default: the client's). Bound a whole call with `signal`. */
  readonly timeoutMs?: number;
  /** Cancels the call, failover included: it rejects with a DynamoError of code Canceled. */
  readonly signal?: AbortSignal;
}

export interface GetOptions extends CallOptions {
  /** Read quorum for this call (1..N). */
  readonly r?: number;
}

export interface WriteOptions extends CallOptions {
  /** Context from an earlier get(); omit for a blind write. */
  readonly context?: Uint8Array;
  /** Write quorum for this call (1..N). */
  readonly w?: number;
}

export interface UpdateOptions extends CallOptions {
  /** Read quorum of the read. */
  readonly r?: number;
  /** Write quorum of the write. */
  readonly w?: number;
}

export interface GetResult {
  /** Concurrent values (siblings); more than one means the writes conflicted. */
  readonly values: Uint8Array[];
  /** Pass to put()/delete() to replace exactly these values. */
  readonly context: Uint8Array;
}

/** Given the key's values (null: no such key), the value to write; null deletes. */
export type Updater = (siblings: Uint8Array[] | null) => Uint8Array | string | null | Promise<Uint8Array | string | null>;

interface Endpoint {
  readonly url: string;
  readonly kv: Client<typeof KVService>;
  readonly admin: Client<typeof AdminService>;
  readonly close: () => void;
}

/** What each attempt of a call is sent with. */
interface AttemptOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

/** How a call may fail over: a read or write on any node, or an operator call to the first. */
type CallKind = "read" | "write" | "operator";

export class DynamoClient {
  private readonly endpoints: readonly Endpoint[];
  private readonly pool: NodePool<Endpoint>;
  private readonly timeoutMs: number | undefined;
  private readonly clusterSecret: string | undefined;
  private readonly authorization: Record<string, string> | undefined;
  /** The origin of every node, in the order given. */
  readonly nodes: readonly string[];
  /** The first node's origin: where operator calls (status, hints, repair, ...) go. */
  readonly baseUrl: string;

  /** TypeError for no node, both `node` and `nodes`, a bad address or gRPC over HTTP/1.1. */
  constructor(options: DynamoClientOptions) {
    if ((options.node === undefined) === (options.nodes === undefined)) throw new TypeError("give DynamoClient either `node` or `nodes`");
    const addresses = options.nodes ?? [options.node!];
    this.timeoutMs = options.timeoutMs;
    this.clusterSecret = options.clusterSecret;
    this.authorization = options.token ? { authorization: `Bearer ${options.token}` } : undefined;
    const endpoints: Endpoint[] = [];
    try {
      for (const node of addresses) {
        const { transport, baseUrl, close } = createDynamoTransport({ ...options, node });
        endpoints.push({ url: baseUrl, kv: createClient(KVService, transport), admin: createClient(AdminService, transport), close });
      }
    } catch (err) {
      for (const e of endpoints) e.close();
      throw err;
    }
    this.endpoints = endpoints;
    this.pool = new NodePool(endpoints, options.backoffMs ?? 1000);
    this.nodes = endpoints.map((e) => e.url);
    this.baseUrl = this.nodes[0]!;
  }

  /**
   * Runs one call: on the nodes in the pool's order for reads and writes, on the first node
   * for operator calls, until it succeeds or may not be tried again (errors.ts: mayRetry).
   */
  private async call<T>(
    kind: CallKind,
    options: CallOptions | undefined,
    headers: Record<string, string> | undefined,
    send: (node: Endpoint, attempt: AttemptOptions) => Promise<T>,
  ): Promise<T> {
    // Whole milliseconds: the deadline headers and the requests' timeout_ms take integers.
    const requested = options?.timeoutMs ?? this.timeoutMs;
    const timeoutMs = requested === undefined ? undefined : Math.ceil(requested);
    // Operator calls carry the cluster secret when the client has it; every call its token.
    const secret = kind === "operator" && this.clusterSecret && !headers ? { [CLUSTER_SECRET_HEADER]: this.clusterSecret } : undefined;
    const allHeaders = headers || secret || this.authorization ? { ...this.authorization, ...secret, ...headers } : undefined;
    const attempt: AttemptOptions = {
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(options?.signal ? { signal: options.signal } : {}),
      ...(allHeaders ? { headers: allHeaders } : {}),
    };
    const order = kind === "operator" ? [this.endpoints[0]!] : this.pool.order();
    const attempts: FailedAttempt[] = [];
    for (const [i, node] of order.entries()) {
      try {
        const result = await send(node, attempt);
        this.pool.answered(node);
        return result;
      } catch (err) {
        const ce = ConnectError.from(err);
        attempts.push({ node: node.url, code: ce.code, message: ce.rawMessage });
        const cancelled = options?.signal?.aborted === true; // says nothing about the node
        if (!cancelled) {
          if (noAnswer(ce) || declined(ce)) this.pool.failed(node);
          else this.pool.answered(node);
        }
        const last = i === order.length - 1 || kind === "operator" || cancelled || !mayRetry(kind, ce);
        if (last) throw new DynamoError(ce, node.url, attempts);
      }
    }
    throw new Error("unreachable: a call tries at least one node");
  }

  /** The cluster secret header, for the operator calls that need it. */
  private secretHeaders(method: string): Record<string, string> {
    if (this.clusterSecret) return { [CLUSTER_SECRET_HEADER]: this.clusterSecret };
    if (this.authorization) return {}; // an admin token may do it too: the node decides
    throw new TypeError(`${method} needs the cluster secret or an admin token (clusterSecret or token option)`);
  }

  /** Reads a key; null when it does not exist or was deleted. Fails over to other nodes. */
  async get(key: string, options?: GetOptions): Promise<GetResult | null> {
    try {
      return await this.call("read", options, undefined, async ({ kv }, call) => {
        const res = await kv.get({ key, r: options?.r, timeoutMs: call.timeoutMs }, call);
        return { values: res.siblings.map((s) => s.value), context: res.context };
      });
    } catch (err) {
      if (err instanceof DynamoError && err.code === Code.NotFound) return null;
      throw err;
    }
  }

  /** Writes a value; returns the context of the new version. Fails over only when safe. */
  put(key: string, value: Uint8Array | string, options?: WriteOptions): Promise<{ context: Uint8Array }> {
    const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
    return this.call("write", options, undefined, async ({ kv }, call) => {
      const res = await kv.put({ key, value: bytes, context: options?.context, w: options?.w, timeoutMs: call.timeoutMs }, call);
      return { context: res.context };
    });
  }

  /** Deletes the versions the context covers (every version with no context). */
  async delete(key: string, options?: WriteOptions): Promise<void> {
    await this.call("write", options, undefined, ({ kv }, call) =>
      kv.delete({ key, context: options?.context, w: options?.w, timeoutMs: call.timeoutMs }, call),
    );
  }

  /**
   * Read-modify-write: reads the key, calls `fn` with its values (several when there are
   * siblings; null when the key does not exist) and writes what it returns with the context
   * read, so the write replaces exactly those values (null deletes them). Returns the new
   * context, or null after a delete or when `fn` returned null for a missing key (nothing is
   * written). Not atomic: a write made between the read and the write survives as a sibling,
   * which the next update's `fn` receives. It retries nothing beyond get's and put's failover;
   * an error thrown by `fn` rejects the update as is.
   */
  async update(key: string, fn: Updater, options?: UpdateOptions): Promise<{ context: Uint8Array } | null> {
    const { r, w, ...call } = options ?? {};
    const read = await this.get(key, { ...call, r });
    const value = await fn(read ? read.values : null);
    const write = { ...call, w, context: read?.context };
    if (value !== null) return this.put(key, value, write);
    if (read) await this.delete(key, write);
    return null;
  }

  /** The first node's view of the cluster. */
  status(options?: CallOptions): Promise<StatusResponse> {
    return this.call("operator", options, undefined, ({ admin }, call) => admin.status({}, call));
  }

  /** Hints the first node holds for other nodes (hinted handoff), per target, with counters. */
  hints(options?: CallOptions): Promise<ListHintsResponse> {
    return this.call("operator", options, undefined, ({ admin }, call) => admin.listHints({}, call));
  }

  /**
   * Runs an anti-entropy exchange now between the first node and the co-replicas of every
   * range it replicates that overlaps `range` (tokens start < t <= end, wrapping; all ranges
   * when omitted), and reports what moved. Needs the cluster secret.
   */
  async repair(range?: { start: number; end: number }, options?: CallOptions): Promise<RepairResponse> {
    return this.call("operator", options, this.secretHeaders("repair"), ({ admin }, call) => admin.repair(range ? { range } : {}, call));
  }

  /**
   * Rebuilds a key whose version clock is damaged (writes to it fail with FailedPrecondition
   * "cannot take a new version"): same sibling values, fresh versions, on every replica. Needs
   * the cluster secret and every replica of the key up.
   */
  async repairKey(key: string, options?: CallOptions): Promise<RepairKeyResponse> {
    return this.call("operator", options, this.secretHeaders("repairKey"), ({ admin }, call) => admin.repairKey({ key }, call));
  }

  /** Anti-entropy per range the first node replicates: last exchange, keys repaired, bytes moved. */
  antiEntropyStatus(options?: CallOptions): Promise<AntiEntropyStatusResponse> {
    return this.call("operator", options, undefined, ({ admin }, call) => admin.antiEntropyStatus({}, call));
  }

  /** Asks the first node to leave the cluster for good (it leaves every ring, then shuts down). */
  async leave(options?: CallOptions): Promise<void> {
    await this.call("operator", options, this.secretHeaders("leave"), ({ admin }, call) => admin.leave({}, call));
  }

  /**
   * Starts the first node's decommission: it streams every range it holds to the nodes that gain
   * it, then leaves and stops. Resolves once started, with the number of ranges to stream; follow
   * it with `status()` (members' ring status, `transfers`). FailedPrecondition when fewer than N
   * owners would remain.
   */
  async decommission(options?: CallOptions): Promise<number> {
    const res = await this.call("operator", options, this.secretHeaders("decommission"), ({ admin }, call) => admin.decommission({}, call));
    return res.transfers;
  }

  /**
   * Asks the first node to remove the dead member `nodeId`: the survivors stream its ranges to
   * their new owners, then it is marked removed. Resolves once started (follow it with `status()`
   * on that node). FailedPrecondition for a live member; NotFound for an unknown one.
   */
  async removeNode(nodeId: string, options?: CallOptions): Promise<number> {
    const res = await this.call("operator", options, this.secretHeaders("remove-node"), ({ admin }, call) => admin.removeNode({ nodeId }, call));
    return res.transfers;
  }

  /** Closes every node's HTTP/2 connection; the client can't be used afterwards. */
  close(): void {
    for (const e of this.endpoints) e.close();
  }
}
