export { type NodeConfig, ConfigError, parseConfig, helpText } from "./config.js";
export { DynamoNode, StartupError } from "./node.js";
export { QuorumTracker, type QuorumState } from "./requests/quorum.js";
export { RpcFailureDetector, type FailureDetector } from "./cluster/failure-detector.js";
