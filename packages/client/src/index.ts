export {
  DynamoClient,
  type CallOptions,
  type DynamoClientOptions,
  type GetOptions,
  type GetResult,
  type UpdateOptions,
  type Updater,
  type WriteOptions,
} from "./client.js";
export { DynamoError, type FailedAttempt } from "./errors.js";
export { createDynamoTransport, normalizeNodeUrl, type DynamoTransport, type DynamoTransportOptions, type Protocol } from "./transport.js";
export { VERSION } from "./version.js";
export { CredentialsError, type ResolvedCredentials, resolveCredentials } from "./credentials.js";
export { Code, ConnectError } from "@connectrpc/connect";
