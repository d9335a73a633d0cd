"""What a model's manifest records about its training data (``training`` in the manifest)."""

from __future__ import annotations

from vitrine.catalog import Catalog


def training_record(catalog: Catalog, split_info: dict, config: dict, backbones: dict) -> dict:
    """Data hash, catalog, split, config and backbones of a training run."""
    return {
        "data_hash": catalog.fingerprint(),
        "catalog": str(catalog.root),
        "products": len(catalog.products),
        "split": split_info,
        "config": config,
        "backbones": backbones,
    }
