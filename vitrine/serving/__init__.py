"""Server plumbing shared by every Vitrine service: config, errors, metrics, gRPC app, clients."""
