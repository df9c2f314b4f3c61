export * from "./gen/dynamo/v1/kv_pb.js";
export * from "./gen/dynamo/v1/replica_pb.js";
export * from "./gen/dynamo/v1/admin_pb.js";
export * from "./gen/dynamo/v1/antientropy_pb.js";
export * from "./gen/dynamo/v1/gossip_pb.js";
export * from "./gen/grpc/health/v1/health_pb.js";
export * from "./headers.js";
// The two versions of gRPC server reflection share their message and service names.
export * as reflectionV1 from "./gen/grpc/reflection/v1/reflection_pb.js";
export * as reflectionV1alpha from "./gen/grpc/reflection/v1alpha/reflection_pb.js";
