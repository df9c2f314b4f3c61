// The HTTP headers dynamo-ts defines beyond Connect's and gRPC's own, in one place.

/** Carries the cluster secret on node-to-node calls and on privileged admin calls. */
export const CLUSTER_SECRET_HEADER = "x-dynamo-cluster-secret";

/** Set ("1") on a client write one node hands to another that holds the key (a forwarded write). */
export const FORWARDED_HEADER = "x-dynamo-forwarded";

/**
 * In the error metadata of a forwarded write: "answered" when the node coordinated it and its
 * error is the write's outcome (e.g. too few replicas acknowledged); "declined" when it did not
 * coordinate it (e.g. its disk is failing), so the forwarding node tries another replica. A
 * forwarded write that fails without it never reached a coordinator.
 */
export const FORWARD_OUTCOME_HEADER = "x-dynamo-forward-outcome";

/**
 * The plain HTTP key API (`/kv/{key}`): the causal context, base64, in GET and PUT answers and
 * in PUT and DELETE requests that replace what a read returned.
 */
export const CONTEXT_HEADER = "x-dynamo-context";
