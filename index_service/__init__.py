"""Index service: sharded, durable, filterable FAISS indexes over gRPC (issue #4).

Not implemented yet: this milestone (issue #2) fixes its draft API in protos/vitrine/v1/index.proto.
"""
