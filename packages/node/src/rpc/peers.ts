// Clients for talking to other nodes, with the cluster secret on every request. Per peer, one
// bulk HTTP/2 session reused by the data calls (the replica stream, forwarded writes, hints,
// anti-entropy); per address, one control session for gossip and health probes, so that bulk
// traffic (a full flow-control window, a session in trouble) never delays the calls that decide
// whether a peer is up.
import { Code, type Client, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, type Http2SessionManager, type Http2SessionOptions } from "@connectrpc/connect-node";
import { leanUnaryTransport } from "@dynamo-ts/client/lean-transport";
import { GuardedHttp2SessionManager } from "@dynamo-ts/client/session-manager";
import type { ClientHttp2Stream, OutgoingHttpHeaders } from "node:http2";
import type { TlsPem } from "./tls-material.js";
import { scanPageChecksum } from "./export-import.js";
import {
  AntiEntropyService,
  CLUSTER_SECRET_HEADER,
  FORWARD_OUTCOME_HEADER,
  FORWARDED_HEADER,
  GossipService,
  Health,
  HealthCheckResponse_ServingStatus,
  KVService,
  ReplicaService,
} from "@dynamo-ts/proto";
import { decodeSiblingSet, type SiblingSet } from "@dynamo-ts/vclock";
import { notCoordinatedError, type PutArgs } from "../requests/coordinator.js";
import type { ScanPage, ScanPosition } from "../requests/export.js";
import type { ReplicaEndpoint } from "../requests/replicas.js";
import type { RequestHeaders } from "./listener.js";
import { MAX_STREAMED_RECORD_BYTES, ReplicaChannel } from "./replica-stream/client.js";
import { leanStreamOpener, type RawStreamSource } from "./replica-stream/lean-client.js";
import { isRefusedByOwnSession, isRefusedUnprocessed } from "./unreachable.js";
import { clusterSecretMatcher } from "./call-context.js";

/**
 * A check of the cluster secret header in constant time, for the listener's `isTrusted`: the
 * requests of other nodes (their long-lived streams may be silent for minutes).
 */
export function hasClusterSecret(secret: string): (headers: RequestHeaders) => boolean {
  const matches = clusterSecretMatcher(secret);
  return (headers) => {
    const given = headers[CLUSTER_SECRET_HEADER];
    return typeof given === "string" && matches(given);
  };
}

export interface PeerPoolOptions {
  /**
   * A session with no call in progress for this long is closed. Keep it below the peers'
   * listener idle timeout (60 s by default) so that this side closes first: a GOAWAY from the
   * peer crossing a new call would fail that call. Default 45 000.
   */
  readonly idleConnectionTimeoutMs?: number;
  /** TLS toward other nodes (https, our certificate as the client certificate, only the cluster CA trusted); undefined: plaintext. */
  readonly tls?: () => TlsPem;
  /**
   * Replica streams through the lean client (replica-stream/lean-client.ts), and unary calls
   * (forwarded writes, hints, anti-entropy, gossip, probes) through the SDK's lean unary
   * transport, rather than connect-es's. Default true.
   */
  readonly leanCalls?: boolean;
  /** The largest message taken from a peer on the lean replica stream. Default 64 MiB. */
  readonly streamReadMaxBytes?: number;
}

interface Peer {
  readonly address: string;
  readonly link: BulkLink;
  readonly channel: ReplicaChannel;
  readonly replica: Client<typeof ReplicaService>;
  readonly kv: Client<typeof KVService>;
  readonly antiEntropy: Client<typeof AntiEntropyService>;
  readonly endpoint: ReplicaEndpoint;
}

interface ControlLink {
  readonly sessions: Http2SessionManager;
  readonly gossip: Client<typeof GossipService>;
  readonly health: Client<typeof Health>;
}

export class PeerPool {
  private readonly peers = new Map<string, Peer>();
  private readonly secretInterceptor: Interceptor;
  private readonly controls = new Map<string, ControlLink>();
  private readonly idleConnectionTimeoutMs: number;
  private readonly tls: (() => TlsPem) | undefined;
  private readonly leanCalls: boolean;
  private readonly streamReadMaxBytes: number;
  /** Bulk sessions replaced because they refused responses (see BulkLink). */
  private recycled = 0;

  constructor(
    private readonly secret: string,
    /** Resolves a node id to its current host:port (membership may move it). */
    private readonly addressOf: (node: string) => string | undefined,
    options: PeerPoolOptions = {},
  ) {
    this.idleConnectionTimeoutMs = options.idleConnectionTimeoutMs ?? 45_000;
    this.tls = options.tls;
    this.leanCalls = options.leanCalls ?? true;
    this.streamReadMaxBytes = options.streamReadMaxBytes ?? 64 * 1024 * 1024;
    this.secretInterceptor = (next) => (req) => {
      req.header.set(CLUSTER_SECRET_HEADER, secret);
      return next(req);
    };
  }

  /** Counters for metrics. */
  stats(): { readonly bulkSessionsRecycled: number } {
    return { bulkSessionsRecycled: this.recycled };
  }

  private peer(node: string): Peer {
    const address = this.addressOf(node);
    if (!address) throw new PeerUnknownError(node);
    const existing = this.peers.get(node);
    if (existing && existing.address === address) return existing;
    if (existing) closePeer(existing);

    // Pings keep an idle session verified so a peer that vanished is noticed before a
    // request waits on a dead socket.
    const link = new BulkLink(
      () => this.connect(address, { pingIntervalMs: 10_000, pingTimeoutMs: 5_000, idleConnectionTimeoutMs: this.idleConnectionTimeoutMs }),
      () => this.recycled++,
    );
    const transport = link.transport;
    const replica = createClient(ReplicaService, transport);
    // Coordinators' replica reads and writes share one long-lived stream to the peer.
    const channel = new ReplicaChannel(
      replica,
      node,
      this.leanCalls
        ? leanStreamOpener({ source: link, peer: node, headers: { [CLUSTER_SECRET_HEADER]: this.secret }, readMaxBytes: this.streamReadMaxBytes })
        : undefined,
    );
    const endpoint: ReplicaEndpoint = {
      write: (key, record, hintFor, signal) => channel.write(key, record.encoded, hintFor, signal),
      read: (key, signal) => channel.readAs(key, signal, decodeReadRecord),
    };
    const peer: Peer = {
      address,
      link,
      channel,
      replica,
      kv: createClient(KVService, transport),
      antiEntropy: createClient(AntiEntropyService, transport),
      endpoint,
    };
    this.peers.set(node, peer);
    return peer;
  }

  /** One HTTP/2 session to `address`, binary Connect, the cluster secret on every call. */
  private connect(address: string, sessionOptions: Http2SessionOptions): { sessions: Http2SessionManager; transport: Transport } {
    const pem = this.tls?.();
    const baseUrl = `${pem ? "https" : "http"}://${address}`;
    // The material as it is now: a session opened after a certificate reload uses the new one.
    const sessions = new GuardedHttp2SessionManager(
      baseUrl,
      sessionOptions,
      pem ? { ca: pem.ca, cert: pem.cert, key: pem.key, ALPNProtocols: ["h2"] } : undefined,
    );
    // No compression between nodes: replica messages are small and cross a LAN at most; the
    // gzip that Connect applies to messages over 1 KiB cost more CPU than it saved.
    const transport = createConnectTransport({
      baseUrl,
      httpVersion: "2",
      useBinaryFormat: true,
      acceptCompression: [],
      sessionManager: sessions,
      interceptors: [this.secretInterceptor],
    });
    if (!this.leanCalls) return { sessions, transport };
    // Unary calls straight onto the session: connect-es's unary path cost a forwarded write
    // about as much CPU as the write itself (docs/performance.md). The lean transport runs no
    // interceptors, so the secret is added here; streaming calls keep connect-es's transport.
    const lean = leanUnaryTransport(transport, sessions);
    const secret = this.secret;
    return {
      sessions,
      transport: {
        unary: (method, signal, timeoutMs, header, input, contextValues) => {
          const headers = new Headers(header);
          headers.set(CLUSTER_SECRET_HEADER, secret);
          return lean.unary(method, signal, timeoutMs, headers, input, contextValues);
        },
        stream: lean.stream,
      },
    };
  }

  /** The control session to `address`: gossip and health probes only. */
  private control(address: string): ControlLink {
    let control = this.controls.get(address);
    if (!control) {
      const { sessions, transport } = this.connect(address, { idleConnectionTimeoutMs: this.idleConnectionTimeoutMs });
      control = { sessions, gossip: createClient(GossipService, transport), health: createClient(Health, transport) };
      this.controls.set(address, control);
    }
    return control;
  }

  endpoint(node: string): ReplicaEndpoint {
    return this.peer(node).endpoint;
  }

  replicaClient(node: string): Client<typeof ReplicaService> {
    return this.peer(node).replica;
  }

  /** Anti-entropy exchanges with `node`, over its pooled session. */
  antiEntropyClient(node: string): Client<typeof AntiEntropyService> {
    return this.peer(node).antiEntropy;
  }

  /**
   * Gossip goes by address (a seed's id is not known before it answers), over the address's
   * control session.
   */
  async sendGossip(address: string, message: Uint8Array, timeoutMs: number): Promise<void> {
    await this.control(address).gossip.send({ message }, { timeoutMs });
  }

  /**
   * Resolves when the peer answers its health check as serving; rejects otherwise. Over the
   * peer's control session, not its bulk session.
   */
  async probe(node: string, timeoutMs: number): Promise<void> {
    const address = this.addressOf(node);
    if (!address) throw new PeerUnknownError(node);
    // The replica service's health: whether the peer takes replica traffic, not whether it has
    // enough members up to serve clients (a peer left alone must still be seen as back).
    const res = await this.control(address).health.check({ service: ReplicaService.typeName }, { timeoutMs });
    if (res.status !== HealthCheckResponse_ServingStatus.SERVING) throw new Error(`${node} is not serving`);
  }

  /** Delivers a hint: a plain replica write of the hinted record to its target. */
  async deliverHint(node: string, key: string, record: Uint8Array, timeoutMs: number): Promise<void> {
    await this.peer(node).replica.write({ key, record }, { timeoutMs });
  }

  /** A page of `node`'s store (ReplicaService.Scan), records decoded; for AdminService.Export. */
  async scan(
    node: string,
    after: ScanPosition,
    lastToken: number,
    limits: { maxKeys: number; maxBytes: number },
    signal: AbortSignal,
    timeoutMs: number,
  ): Promise<ScanPage> {
    const res = await this.peer(node).replica.scan({ afterToken: after.token, afterKey: after.key, lastToken, ...limits }, { signal, timeoutMs });
    // Streams of ranges and exports must not take a page damaged on the way or by the peer.
    if (!Buffer.from(scanPageChecksum(res.keys)).equals(Buffer.from(res.checksum))) {
      throw new Error(`a page scanned from ${node} does not match its checksum (${res.keys.length} keys): not applied`);
    }
    return { entries: res.keys.map(({ key, token, record }) => ({ key, token, record: { set: decodeSiblingSet(record), encoded: record } })), done: res.done };
  }

  async purge(node: string, key: string, record: Uint8Array, timeoutMs: number): Promise<boolean> {
    return (await this.peer(node).replica.purge({ key, record }, { timeoutMs })).purged;
  }

  /**
   * Hands a client write to `node` to coordinate (this node holds no replica of the key): as an
   * op on the replica stream to `node`, or, for a value too large for the stream, as a
   * KVService call with the forwarded header. A write it did not coordinate (it declined, the
   * call never reached it, it refused the stream unprocessed, or the stream broke before it
   * answered) rejects with a notCoordinatedError; any other error is the outcome of the write
   * `node` coordinated.
   */
  async forwardWrite(node: string, args: PutArgs): Promise<Uint8Array> {
    // Whole milliseconds: the remaining time is fractional when the client's deadline counts
    // from its request's arrival.
    const timeoutMs = Math.max(1, Math.floor(args.deadline.remainingMs()));
    if ((args.value?.byteLength ?? 0) + args.context.byteLength <= MAX_STREAMED_RECORD_BYTES) {
      const { channel } = this.peer(node);
      return channel.coordinate(
        {
          key: args.key,
          ...(args.value === null ? {} : { value: args.value, contentType: args.contentType ?? "" }),
          context: args.context,
          w: args.w ?? 0,
          timeoutMs,
        },
        args.deadline.signal,
      );
    }
    try {
      return await this.sendForwardedWrite(node, args, timeoutMs);
    } catch (err) {
      const ce = ConnectError.from(err);
      const outcome = ce.metadata.get(FORWARD_OUTCOME_HEADER);
      if (outcome === "declined" || (outcome === null && (ce.code === Code.Unavailable || isRefusedUnprocessed(ce)))) {
        throw notCoordinatedError(`${node} did not coordinate the write: ${ce.rawMessage}`);
      }
      throw ce;
    }
  }

  private async sendForwardedWrite(node: string, args: PutArgs, timeoutMs: number): Promise<Uint8Array> {
    const { kv } = this.peer(node);
    const options = { signal: args.deadline.signal, timeoutMs, headers: { [FORWARDED_HEADER]: "1" } };
    if (args.value === null) {
      await kv.delete({ key: args.key, context: args.context, w: args.w }, options);
      // A forwarded delete answers with no context; deletes don't hand one back to clients.
      return new Uint8Array();
    }
    const res = await kv.put({ key: args.key, value: args.value, contentType: args.contentType ?? "", context: args.context, w: args.w }, options);
    return res.context;
  }

  close(): void {
    for (const peer of this.peers.values()) closePeer(peer);
    this.peers.clear();
    for (const { sessions } of this.controls.values()) sessions.abort();
    this.controls.clear();
  }
}

function closePeer(peer: Peer): void {
  peer.channel.close();
  peer.link.close();
}

/** How often a poisoned session may be replaced, at most. */
const RECYCLE_MIN_INTERVAL_MS = 5_000;
/** A replaced session is closed once its calls are done, or after this long whatever it carries. */
const RETIRE_AFTER_MS = 60_000;
const RETIRE_POLL_MS = 1_000;

/**
 * The bulk session to one peer, replaced by a new one when it starts refusing responses.
 *
 * A Node HTTP/2 client (Node 24) counts request data it has queued but not yet sent against the
 * session's memory budget (maxSessionMemory, 10 MB), and when a stream is reset while data is
 * still queued on it (a call given up on its deadline while a large record waited for flow
 * control to a slow peer), that amount stays counted for the life of the session. Once the
 * budget is used up, the session rejects the response HEADERS of every new stream with
 * ENHANCE_YOUR_CALM (the caller sees "Stream closed with error code NGHTTP2_ENHANCE_YOUR_CALM"),
 * while PINGs are still answered, so the session is never replaced on its own. Such a failure is
 * taken as the sign: later calls go over a new session, and the old one is closed once the calls
 * still running on it (the replica stream keeps working) are done, or after a minute.
 */
class BulkLink implements RawStreamSource {
  private current: { sessions: Http2SessionManager; transport: Transport };
  /** The session each raw stream was opened on (for its keep-alive). */
  private readonly streamSessions = new WeakMap<ClientHttp2Stream, Http2SessionManager>();
  private readonly retiring = new Set<Http2SessionManager>();
  private lastRecycle = 0;
  private closed = false;
  readonly transport: Transport;

  constructor(
    private readonly open: () => { sessions: Http2SessionManager; transport: Transport },
    private readonly onRecycle: () => void,
  ) {
    this.current = open();
    // Calls go over whichever session is current when they start.
    this.transport = {
      unary: (method, signal, timeoutMs, header, input, contextValues) =>
        this.onCurrent((transport) => transport.unary(method, signal, timeoutMs, header, input, contextValues)),
      stream: (method, signal, timeoutMs, header, input, contextValues) =>
        this.onCurrent((transport) => transport.stream(method, signal, timeoutMs, header, input, contextValues)),
    };
  }

  /** Runs a call on the current session; a refusal by that session replaces it for later calls. */
  private async onCurrent<T>(call: (transport: Transport) => Promise<T>): Promise<T> {
    const { sessions, transport } = this.current;
    try {
      return await call(transport);
    } catch (err) {
      if (isRefusedByOwnSession(err)) this.recycle(sessions);
      throw err;
    }
  }

  async request(path: string, headers: OutgoingHttpHeaders): Promise<ClientHttp2Stream> {
    const { sessions } = this.current;
    const stream = await sessions.request("POST", path, headers, {});
    this.streamSessions.set(stream, sessions);
    return stream;
  }

  responseRead(stream: ClientHttp2Stream): void {
    this.streamSessions.get(stream)?.notifyResponseByteRead(stream);
  }

  refusedBySession(stream: ClientHttp2Stream): void {
    this.recycle(this.streamSessions.get(stream) ?? this.current.sessions);
  }

  private recycle(poisoned: Http2SessionManager): void {
    const now = Date.now();
    if (this.closed || poisoned !== this.current.sessions || now - this.lastRecycle < RECYCLE_MIN_INTERVAL_MS) return;
    this.lastRecycle = now;
    this.current = this.open();
    this.onRecycle();
    this.retiring.add(poisoned);
    const startedAt = now;
    const poll = setInterval(() => {
      if (poisoned.state() === "open" && Date.now() - startedAt < RETIRE_AFTER_MS) return;
      clearInterval(poll);
      this.retiring.delete(poisoned);
      poisoned.abort();
    }, RETIRE_POLL_MS);
    poll.unref();
  }

  close(): void {
    this.closed = true;
    this.current.sessions.abort();
    for (const sessions of this.retiring) sessions.abort();
    this.retiring.clear();
  }
}

export class PeerUnknownError extends Error {
  constructor(node: string) {
    super(`no address known for node ${node}`);
    this.name = "PeerUnknownError";
  }
}

/** A peer's answer to a read: its encoded sibling set, empty when it holds none. */
function decodeReadRecord(record: Uint8Array): SiblingSet | undefined {
  return record.byteLength === 0 ? undefined : decodeSiblingSet(record);
}
