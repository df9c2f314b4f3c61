export { DynamoClient, type CallOptions, type DynamoClientOptions, type GetOptions, type GetResult, type WriteOptions } from "./client.js";
export { createDynamoTransport, normalizeNodeUrl, type DynamoTransport, type DynamoTransportOptions, type Protocol } from "./transport.js";
export { Code, ConnectError } from "@connectrpc/connect";
