export {
  DynamoClient,
  normalizeNodeUrl,
  type CallOptions,
  type DynamoClientOptions,
  type GetOptions,
  type GetResult,
  type Protocol,
  type WriteOptions,
} from "./client.js";
export { Code, ConnectError } from "@connectrpc/connect";
