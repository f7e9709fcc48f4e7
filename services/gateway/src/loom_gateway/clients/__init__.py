"""gRPC adapters to other Loom services (the only modules here that import grpc/protobuf)."""
