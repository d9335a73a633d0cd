"""Gateway: the public product-search API composing the encoder and index services."""
