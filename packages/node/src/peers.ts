// Clients for talking to other nodes. One HTTP/2 session per peer, reused by every call (the
// replica stream, forwarded writes, hints, probes), with the cluster secret on every request.
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager, type Http2SessionOptions } from "@connectrpc/connect-node";
import { AntiEntropyService, GossipService, Health, HealthCheckResponse_ServingStatus, KVService, ReplicaService } from "@dynamo-ts/proto";
import { decodeSiblingSet } from "@dynamo-ts/vclock";
import type { PutArgs, ReplicaEndpoint } from "./coordinator.js";
import { ReplicaChannel } from "./replica-stream.js";

export const SECRET_HEADER = "x-dynamo-cluster-secret";
/** Set on a write one node hands to another that is in the key's preference list. */
export const FORWARDED_HEADER = "x-dynamo-forwarded";

interface Peer {
  readonly address: string;
  readonly sessions: Http2SessionManager;
  readonly channel: ReplicaChannel;
  readonly replica: Client<typeof ReplicaService>;
  readonly kv: Client<typeof KVService>;
  readonly health: Client<typeof Health>;
  readonly antiEntropy: Client<typeof AntiEntropyService>;
  readonly endpoint: ReplicaEndpoint;
}

export class PeerPool {
  private readonly peers = new Map<string, Peer>();
  private readonly secretInterceptor: Interceptor;
  private readonly gossipClients = new Map<string, { sessions: Http2SessionManager; client: Client<typeof GossipService> }>();

  constructor(
    secret: string,
    /** Resolves a node id to its current host:port (membership may move it). */
    private readonly addressOf: (node: string) => string | undefined,
  ) {
    this.secretInterceptor = (next) => (req) => {
      req.header.set(SECRET_HEADER, secret);
      return next(req);
    };
  }

  private peer(node: string): Peer {
    const address = this.addressOf(node);
    if (!address) throw new PeerUnknownError(node);
    const existing = this.peers.get(node);
    if (existing && existing.address === address) return existing;
    if (existing) closePeer(existing);

    // Pings keep an idle session verified so a peer that vanished is noticed before a
    // request waits on a dead socket.
    const { sessions, transport } = this.connect(address, { pingIntervalMs: 10_000, pingTimeoutMs: 5_000, idleConnectionTimeoutMs: 60_000 });
    const replica = createClient(ReplicaService, transport);
    // Coordinators' replica reads and writes share one long-lived stream to the peer.
    const channel = new ReplicaChannel(replica, node);
    const endpoint: ReplicaEndpoint = {
      write: (key, _set, encoded, hintFor, signal) => channel.write(key, encoded, hintFor, signal),
      async read(key, signal) {
        const record = await channel.read(key, signal);
        return record.byteLength === 0 ? undefined : decodeSiblingSet(record);
      },
    };
    const peer: Peer = {
      address,
      sessions,
      channel,
      replica,
      kv: createClient(KVService, transport),
      health: createClient(Health, transport),
      antiEntropy: createClient(AntiEntropyService, transport),
      endpoint,
    };
    this.peers.set(node, peer);
    return peer;
  }

  /** One HTTP/2 session to `address`, binary Connect, the cluster secret on every call. */
  private connect(address: string, sessionOptions: Http2SessionOptions): { sessions: Http2SessionManager; transport: Transport } {
    const baseUrl = `http://${address}`;
    const sessions = new Http2SessionManager(baseUrl, sessionOptions);
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
    return { sessions, transport };
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
   * Gossip goes by address (a seed's id is not known before it answers), over a session per
   * address of its own.
   */
  async sendGossip(address: string, message: Uint8Array, timeoutMs: number): Promise<void> {
    let gossip = this.gossipClients.get(address);
    if (!gossip) {
      const { sessions, transport } = this.connect(address, { idleConnectionTimeoutMs: 60_000 });
      gossip = { sessions, client: createClient(GossipService, transport) };
      this.gossipClients.set(address, gossip);
    }
    await gossip.client.send({ message }, { timeoutMs });
  }

  /** Resolves when the peer answers its health check as serving; rejects otherwise. */
  async probe(node: string, timeoutMs: number): Promise<void> {
    const res = await this.peer(node).health.check({}, { timeoutMs });
    if (res.status !== HealthCheckResponse_ServingStatus.SERVING) throw new Error(`${node} is not serving`);
  }

  /** Delivers a hint: a plain replica write of the hinted record to its target. */
  async deliverHint(node: string, key: string, record: Uint8Array, timeoutMs: number): Promise<void> {
    await this.peer(node).replica.write({ key, record }, { timeoutMs });
  }

  async purge(node: string, key: string, record: Uint8Array, timeoutMs: number): Promise<boolean> {
    return (await this.peer(node).replica.purge({ key, record }, { timeoutMs })).purged;
  }

  /** Asks `node` to coordinate a write this node cannot (it holds no replica of the key). */
  async forwardWrite(node: string, args: PutArgs): Promise<Uint8Array> {
    const { kv } = this.peer(node);
    const options = {
      signal: args.deadline.signal,
      timeoutMs: Math.max(1, args.deadline.remainingMs()),
      headers: { [FORWARDED_HEADER]: "1" },
    };
    if (args.value === null) {
      await kv.delete({ key: args.key, context: args.context, w: args.w }, options);
      // A forwarded delete answers with no context; deletes don't hand one back to clients.
      return new Uint8Array();
    }
    const res = await kv.put({ key: args.key, value: args.value, context: args.context, w: args.w }, options);
    return res.context;
  }

  close(): void {
    for (const peer of this.peers.values()) closePeer(peer);
    this.peers.clear();
    for (const { sessions } of this.gossipClients.values()) sessions.abort();
    this.gossipClients.clear();
  }
}

function closePeer(peer: Peer): void {
  peer.channel.close();
  peer.sessions.abort();
}

export class PeerUnknownError extends Error {
  constructor(node: string) {
    super(`no address known for node ${node}`);
    this.name = "PeerUnknownError";
  }
}
