"""Encoder service settings (flags, ``VITRINE_*`` env, YAML; see :mod:`vitrine.serving.config`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from vitrine.serving.config import ConfigError, ServerConfig


@dataclass
class EncoderConfig(ServerConfig):
    port: int = 50051
    metrics_port: int = 9401
    models_dir: str = "models"
    # Models to load at start ("name" = its latest version, "name:3" = version 3); empty = all.
    models: list[str] = field(default_factory=list)
    max_batch_size: int = 32  # items per inference execution (and per request)
    max_queue_delay_us: int = 2000  # how long a batch waits for batch-mates once it has one item
    max_queue_items: int = 2048  # queued items per model before RESOURCE_EXHAUSTED
    instances: int = 1  # concurrent executions per model
    intra_op_threads: int = 0  # onnxruntime threads per execution; 0 = the host's cores
    providers: str = "auto"  # auto | cpu | cuda
    device_id: int = 0  # CUDA device for the CUDA execution provider
    decode_workers: int = 0  # threads decoding/resizing images; 0 = the host's cores
    poll_interval_s: float = 0.0  # watch the repository for new/removed versions; 0 = off
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_text_chars: int = 8192
    max_rerank_candidates: int = 200  # candidates per Rerank call
    rerank_batch_pairs: int = 256  # (query, candidate) pairs per rerank execution
    # A rerank call already brings tens of pairs: waiting for batch-mates costs more than it
    # saves, and calls that arrive during an execution are still batched together.
    rerank_queue_delay_us: int = 0
    text_overflow: str = "truncate"  # truncate | reject: texts longer than the model's window
    max_generate_photos: int = 256  # photos decoding at once per caption model (then 429)
    generate_step_rows: int = 256  # hypotheses per decoder-step execution
    max_beam: int = 8  # widest beam a Generate call may ask for

    def validate(self) -> None:
        super().validate()
        if self.max_batch_size < 1:
            raise ConfigError("max_batch_size: must be >= 1")
        if self.max_queue_delay_us < 0 or self.rerank_queue_delay_us < 0:
            raise ConfigError("max_queue_delay_us/rerank_queue_delay_us: must be >= 0")
        if self.max_queue_items < self.max_batch_size:
            raise ConfigError("max_queue_items: must be >= max_batch_size")
        if self.max_rerank_candidates < 1 or self.rerank_batch_pairs < 1:
            raise ConfigError("max_rerank_candidates/rerank_batch_pairs: must be >= 1")
        if self.max_queue_items < 2 * self.max_rerank_candidates:
            raise ConfigError("max_queue_items: must be >= 2 * max_rerank_candidates")
        if self.max_generate_photos < 1 or self.generate_step_rows < 1 or self.max_beam < 1:
            raise ConfigError("max_generate_photos/generate_step_rows/max_beam: must be >= 1")
        if self.generate_step_rows < self.max_beam:
            raise ConfigError("generate_step_rows: must be >= max_beam")
        if self.instances < 1:
            raise ConfigError("instances: must be >= 1")
        if self.intra_op_threads < 0 or self.decode_workers < 0:
            raise ConfigError("intra_op_threads/decode_workers: must be >= 0")
        if self.providers not in ("auto", "cpu", "cuda"):
            raise ConfigError("providers: must be auto, cpu or cuda")
        if self.text_overflow not in ("truncate", "reject"):
            raise ConfigError("text_overflow: must be truncate or reject")
        if self.poll_interval_s < 0:
            raise ConfigError("poll_interval_s: must be >= 0")
        if self.max_image_bytes < 1 or self.max_image_pixels < 1 or self.max_text_chars < 1:
            raise ConfigError("max_image_bytes/max_image_pixels/max_text_chars: must be >= 1")
        for spec in self.models:
            name, _, version = spec.partition(":")
            if not name or (version and not version.isdigit()):
                raise ConfigError(f"models: {spec!r} is not NAME or NAME:VERSION")

    @property
    def threads(self) -> int:
        return self.intra_op_threads or (os.cpu_count() or 1)

    @property
    def decoders(self) -> int:
        return self.decode_workers or (os.cpu_count() or 1)
