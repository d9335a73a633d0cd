"""Generated gRPC/protobuf stubs for the vitrine.v1 API (see protos/)."""
