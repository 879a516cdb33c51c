"""Generated protobuf and gRPC stubs of proto/kvtier/v1 (build_package.py writes them here)."""
