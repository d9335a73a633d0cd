"""The three services in this process, on 127.0.0.1 port 0: an encoder over a model repository
(the tiny models tests publish), one index process and a gateway using them."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from encoder_service.config import EncoderConfig
from encoder_service.server import EncoderServer
from gateway.config import GatewayConfig
from gateway.server import GatewayServer
from index_service.config import IndexConfig
from index_service.server import IndexServer
from tests.support.servers import ServerThread


@contextmanager
def tiny_stack(tmp: Path, repo: Path, **gateway_settings):
    """Yield ``(encoder, index, gateway)`` ServerThreads; ``gateway_settings`` override the
    gateway's (tiny-text/tiny-image towers, Flat shards, no metrics port by default)."""
    enc_cfg = EncoderConfig(
        models_dir=str(repo), port=0, metrics_port=-1, intra_op_threads=1, log_format="text"
    )
    idx_cfg = IndexConfig(data_dir=str(tmp / "data"), port=0, metrics_port=-1, log_format="text")
    with ServerThread(EncoderServer(enc_cfg)) as enc, ServerThread(IndexServer(idx_cfg)) as idx:
        settings = {
            "port": 0,
            "metrics_port": -1,
            "text_model": "tiny-text",
            "image_model": "tiny-image",
            "index_spec": "Flat",
            "log_format": "text",
            **gateway_settings,
        }
        gw_cfg = GatewayConfig(encoder=enc.target, index_endpoints=[idx.target], **settings)
        with ServerThread(GatewayServer(gw_cfg)) as gw:
            yield enc, idx, gw
