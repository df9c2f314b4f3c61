// Typed client for a dynamo-ts cluster. Talks to one node (any node coordinates) over
// Connect, gRPC or gRPC-Web; errors are ConnectErrors with the codes of the public API.
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
import { createDynamoTransport, type DynamoTransportOptions } from "./transport.js";

/** The node and wire (as createDynamoTransport takes them), plus the client's own settings. */
export interface DynamoClientOptions extends DynamoTransportOptions {
  /** Default deadline of each call, in ms; also sent to the node as timeout_ms. */
  readonly timeoutMs?: number;
  /** The cluster secret, for operator calls that need it (leave). */
  readonly clusterSecret?: string;
}

export interface CallOptions {
  readonly timeoutMs?: number;
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

export interface GetResult {
  /** Concurrent values (siblings); more than one means the writes conflicted. */
  readonly values: Uint8Array[];
  /** Pass to put()/delete() to replace exactly these values. */
  readonly context: Uint8Array;
}

export class DynamoClient {
  private readonly kv: Client<typeof KVService>;
  private readonly admin: Client<typeof AdminService>;
  private readonly closeTransport: () => void;
  private readonly timeoutMs: number | undefined;
  private readonly clusterSecret: string | undefined;
  readonly baseUrl: string;

  constructor(options: DynamoClientOptions) {
    this.timeoutMs = options.timeoutMs;
    this.clusterSecret = options.clusterSecret;
    const { transport, baseUrl, close } = createDynamoTransport(options);
    this.baseUrl = baseUrl;
    this.closeTransport = close;
    this.kv = createClient(KVService, transport);
    this.admin = createClient(AdminService, transport);
  }

  private callOptions(options: CallOptions | undefined): { timeoutMs?: number; signal?: AbortSignal } {
    const timeoutMs = options?.timeoutMs ?? this.timeoutMs;
    return { ...(timeoutMs !== undefined ? { timeoutMs } : {}), ...(options?.signal ? { signal: options.signal } : {}) };
  }

  /** callOptions plus the cluster secret header, for the operator calls that need it. */
  private secretCallOptions(method: string, options: CallOptions | undefined): { timeoutMs?: number; signal?: AbortSignal; headers: Record<string, string> } {
    if (!this.clusterSecret) throw new TypeError(`${method} needs the cluster secret (clusterSecret option)`);
    return { ...this.callOptions(options), headers: { [CLUSTER_SECRET_HEADER]: this.clusterSecret } };
  }

  /** Reads a key; null when it does not exist or was deleted. */
  async get(key: string, options?: GetOptions): Promise<GetResult | null> {
    const call = this.callOptions(options);
    try {
      const res = await this.kv.get({ key, r: options?.r, timeoutMs: call.timeoutMs }, call);
      return { values: res.siblings.map((s) => s.value), context: res.context };
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.NotFound) return null;
      throw err;
    }
  }

  /** Writes a value; returns the context of the new version. */
  async put(key: string, value: Uint8Array | string, options?: WriteOptions): Promise<{ context: Uint8Array }> {
    const call = this.callOptions(options);
    const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
    const res = await this.kv.put({ key, value: bytes, context: options?.context, w: options?.w, timeoutMs: call.timeoutMs }, call);
    return { context: res.context };
  }

  /** Deletes the versions the context covers (every version with no context). */
  async delete(key: string, options?: WriteOptions): Promise<void> {
    const call = this.callOptions(options);
    await this.kv.delete({ key, context: options?.context, w: options?.w, timeoutMs: call.timeoutMs }, call);
  }

  /** The node's view of the cluster. */
  status(options?: CallOptions): Promise<StatusResponse> {
    return this.admin.status({}, this.callOptions(options));
  }

  /** Hints the node holds for other nodes (hinted handoff), per target, with counters. */
  hints(options?: CallOptions): Promise<ListHintsResponse> {
    return this.admin.listHints({}, this.callOptions(options));
  }

  /**
   * Runs an anti-entropy exchange now between the node and the co-replicas of every range it
   * replicates that overlaps `range` (tokens start < t <= end, wrapping; all ranges when
   * omitted), and reports what moved. Needs the cluster secret.
   */
  async repair(range?: { start: number; end: number }, options?: CallOptions): Promise<RepairResponse> {
    return this.admin.repair(range ? { range } : {}, this.secretCallOptions("repair", options));
  }

  /**
   * Rebuilds a key whose version clock is damaged (writes to it fail with FailedPrecondition
   * "cannot take a new version"): same sibling values, fresh versions, on every replica. Needs
   * the cluster secret and every replica of the key up.
   */
  async repairKey(key: string, options?: CallOptions): Promise<RepairKeyResponse> {
    return this.admin.repairKey({ key }, this.secretCallOptions("repairKey", options));
  }

  /** Anti-entropy per range the node replicates: last exchange, keys repaired, bytes moved. */
  antiEntropyStatus(options?: CallOptions): Promise<AntiEntropyStatusResponse> {
    return this.admin.antiEntropyStatus({}, this.callOptions(options));
  }

  /** Asks the node to leave the cluster for good (it leaves every ring, then shuts down). */
  async leave(options?: CallOptions): Promise<void> {
    await this.admin.leave({}, this.secretCallOptions("leave", options));
  }

  /** Closes the HTTP/2 connection; the client can't be used afterwards. */
  close(): void {
    this.closeTransport();
  }
}
