export * from "./gen/dynamo/v1/kv_pb.js";
export * from "./gen/dynamo/v1/replica_pb.js";
export * from "./gen/dynamo/v1/admin_pb.js";
export * from "./gen/dynamo/v1/antientropy_pb.js";
export * from "./gen/dynamo/v1/gossip_pb.js";
export * from "./gen/grpc/health/v1/health_pb.js";
export * from "./headers.js";
