"""Gateway: the public search and ingest API composing encoder and index services (issue #5).

Not implemented yet: this milestone (issue #2) fixes its draft API in protos/vitrine/v1/gateway.proto.
"""
