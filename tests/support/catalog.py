"""Catalog products as gateway ingest batches, for tests that fill a stack."""

from __future__ import annotations

from gateway.client import product


def ingest_batches(products, size: int = 50) -> list[list]:
    """``products`` (vitrine.catalog.Product) as IngestProducts batches of ``size``, photos read."""
    return [
        [
            product(p.id, p.title, dict(p.attributes), p.image_path.read_bytes())
            for p in products[s : s + size]
        ]
        for s in range(0, len(products), size)
    ]
