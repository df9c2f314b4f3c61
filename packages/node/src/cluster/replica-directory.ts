// Which replica endpoint serves a node, and whether that node is worth sending to: the local
// store for this node, a peer over RPC otherwise. Every peer call's outcome feeds the failure
// detector, so the request logic never sees sockets or detectors (see requests/replicas.ts).
import type { ReplicaEndpoint, Replicas } from "../requests/replicas.js";
import { isUnreachable } from "../rpc/unreachable.js";
import type { RpcFailureDetector } from "./failure-detector.js";

/** What the directory needs to know of gossip's view of a node. */
export interface GossipView {
  /** Not held dead or gone by gossip. */
  isReachable(node: string): boolean;
  /** When gossip last heard from the node (ms), if ever. */
  lastHeardAt(node: string): number | undefined;
}

export class ReplicaDirectory implements Replicas {
  /** One endpoint object per peer, made on first use (a request asks for each of its replicas). */
  private readonly peerEndpoints = new Map<string, ReplicaEndpoint>();

  constructor(
    private readonly self: string,
    private readonly local: ReplicaEndpoint,
    private readonly remote: (node: string) => ReplicaEndpoint,
    private readonly detector: RpcFailureDetector,
    private readonly gossip: GossipView,
    /** Told of every call to a peer replica through endpoint(): for metrics. */
    private readonly onPeerCall?: (peer: string, op: "write" | "read", ok: boolean, seconds: number) => void,
  ) {}

  /** The local store for self, a peer over RPC otherwise; peer outcomes feed the failure detector. */
  endpoint(node: string): ReplicaEndpoint {
    if (node === this.self) return this.local;
    let endpoint = this.peerEndpoints.get(node);
    if (endpoint === undefined) {
      // The peer's own endpoint is looked up per call: the pool may replace it.
      endpoint = {
        write: (key, record, hintFor, signal) => this.track(node, "write", this.remote(node).write(key, record, hintFor, signal)),
        read: (key, signal) => this.track(node, "read", this.remote(node).read(key, signal)),
      };
      this.peerEndpoints.set(node, endpoint);
    }
    return endpoint;
  }

  /**
   * Worth sending to: gossip does not hold it dead or gone, and either this node's own RPCs
   * to it work or gossip heard from it after they last failed.
   */
  isAvailable(node: string): boolean {
    if (node === this.self) return true;
    if (!this.gossip.isReachable(node)) return false;
    if (this.detector.isAvailable(node)) return true;
    const heard = this.gossip.lastHeardAt(node);
    const down = this.detector.downSince(node);
    return heard !== undefined && down !== undefined && heard > down;
  }

  /** Feeds the outcome of any call to `node` to the failure detector. */
  observe<T>(node: string, call: Promise<T>): Promise<T> {
    return this.track(node, undefined, call);
  }

  /**
   * observe(), and for a replica op (`op`) the metrics report, in one handler: a promise more per
   * replica call was a cost per request.
   */
  private track<T>(node: string, op: "write" | "read" | undefined, call: Promise<T>): Promise<T> {
    const report = op === undefined ? undefined : this.onPeerCall;
    const started = report === undefined ? 0 : performance.now();
    return call.then(
      (value) => {
        this.detector.recordSuccess(node);
        report?.(node, op!, true, (performance.now() - started) / 1000);
        return value;
      },
      (err: unknown) => {
        // Only an unreachable peer counts against it: any other error is an answer.
        if (isUnreachable(err)) this.detector.recordFailure(node);
        else this.detector.recordSuccess(node);
        report?.(node, op!, false, (performance.now() - started) / 1000);
        throw err;
      },
    );
  }
}
