"""Index service: sharded, durable, filterable FAISS indexes over gRPC."""
