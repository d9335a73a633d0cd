from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_catalog():
    from vitrine.catalog import load_catalog

    return load_catalog()


@pytest.fixture(scope="session")
def feature_cache_dir(tmp_path_factory) -> Path:
    # Shared across the session; kept out of the repo's .cache so tests start clean.
    return Path(os.environ.get("VITRINE_TEST_CACHE", tmp_path_factory.mktemp("features")))


@pytest.fixture(scope="session")
def trained_repo(tmp_path_factory, demo_catalog, feature_cache_dir):
    """Train both pairs (default + probe) a few steps on the demo catalog and export them."""
    import torch

    from exporter.pipeline import run_training
    from exporter.train import TrainConfig

    torch.set_num_threads(2)
    models = tmp_path_factory.mktemp("models")
    trained = run_training(
        demo_catalog,
        models,
        TrainConfig(epochs=1, batch_size=64, max_steps=4, warmup_steps=2),
        cache_dir=feature_cache_dir,
        quiet=True,
    )
    return models, trained
