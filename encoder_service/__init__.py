"""Encoder service: serves the ONNX towers of a model repository over gRPC (issue #3).

Not implemented yet: this milestone (issue #2) fixes its contract, the model repository
(:mod:`vitrine.model_repo`) and the shared preprocessing (:mod:`vitrine.preprocess`) it will reuse.
"""
