"""Encoder service: serves the ONNX text and image towers over gRPC with dynamic batching."""
