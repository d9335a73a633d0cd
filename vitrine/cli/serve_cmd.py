"""``vitrine serve encoder|index|gateway``: one service (flags > VITRINE_* env > YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitrine.cli.app import app

serve_app = typer.Typer(
    help="Run a Vitrine gRPC service (config: flags > VITRINE_* env > --config YAML > defaults).",
    no_args_is_help=True,
)
app.add_typer(serve_app, name="serve")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", exists=True, dir_okay=False, help="YAML file with settings."),
]
HostOpt = Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")]
PortOpt = Annotated[int | None, typer.Option(help="gRPC port; 0 picks a free one.")]
MetricsPortOpt = Annotated[
    int | None, typer.Option(help="Prometheus /metrics port; 0 picks a free one, -1 disables.")
]
ReadyFileOpt = Annotated[
    str | None,
    typer.Option(
        help="Write {port, metrics_port, health_port, tls, pid} as JSON here once ready (scripts)."
    ),
]
TlsCertOpt = Annotated[
    str | None, typer.Option(help="TLS certificate (PEM); with --tls-key-file turns TLS on.")
]
TlsKeyOpt = Annotated[str | None, typer.Option(help="TLS private key (PEM).")]
TlsCaOpt = Annotated[
    str | None,
    typer.Option(help="CA bundle verifying peers: client certs here, servers this one calls."),
]
TlsClientAuthOpt = Annotated[
    bool | None,
    typer.Option(help="With TLS: accept only clients with a certificate from --tls-ca-file."),
]
PlaintextOpt = Annotated[
    bool | None,
    typer.Option(help="Allow serving without TLS on a non-loopback host (explicit opt-out)."),
]
HealthPortOpt = Annotated[
    int | None,
    typer.Option(help="Plaintext port with only grpc.health.v1 (TLS-less probes); -1 = none."),
]


@serve_app.command("encoder")
def serve_encoder(
    models: Annotated[Path | None, typer.Option("--models", help="Model repository.")] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="Load only this model (NAME or NAME:VERSION); repeatable."),
    ] = None,
    config: ConfigOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    metrics_port: MetricsPortOpt = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Items per execution.")] = None,
    max_queue_delay_us: Annotated[
        int | None, typer.Option(help="Longest wait for batch-mates, microseconds.")
    ] = None,
    max_queue_items: Annotated[
        int | None, typer.Option(help="Queued items per model before RESOURCE_EXHAUSTED.")
    ] = None,
    instances: Annotated[int | None, typer.Option(help="Concurrent executions per model.")] = None,
    providers: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    intra_op_threads: Annotated[
        int | None, typer.Option(help="onnxruntime threads per execution (0 = cores).")
    ] = None,
    poll_interval_s: Annotated[
        float | None, typer.Option(help="Watch the repository for new versions (0 = off).")
    ] = None,
    text_overflow: Annotated[
        str | None, typer.Option(help="truncate or reject texts longer than the window.")
    ] = None,
    tls_cert_file: TlsCertOpt = None,
    tls_key_file: TlsKeyOpt = None,
    tls_ca_file: TlsCaOpt = None,
    tls_client_auth: TlsClientAuthOpt = None,
    plaintext: PlaintextOpt = None,
    health_port: HealthPortOpt = None,
    ready_file: ReadyFileOpt = None,
) -> None:
    """Serve the ONNX towers of a model repository over gRPC (vitrine.v1.EncoderService)."""
    params = dict(locals())
    from encoder_service.config import EncoderConfig
    from encoder_service.server import main
    from vitrine.serving.config import ConfigError, load_config

    overrides = {k: v for k, v in params.items() if k not in ("config", "ready_file", "model")}
    overrides["models_dir"] = str(overrides.pop("models")) if models else None
    overrides["models"] = model or None
    try:
        cfg = load_config(EncoderConfig, config, overrides)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    main(cfg, ready_file)


@serve_app.command("index")
def serve_index(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where collections (WAL, snapshots) live.")
    ] = None,
    config: ConfigOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    metrics_port: MetricsPortOpt = None,
    fsync: Annotated[
        bool | None, typer.Option(help="fsync the WAL before acknowledging writes.")
    ] = None,
    snapshot_wal_mb: Annotated[
        int | None, typer.Option(help="Snapshot once the WAL grew this many MiB.")
    ] = None,
    exact_max: Annotated[
        int | None, typer.Option(help="Filtered searches over at most this many run exactly.")
    ] = None,
    search_threads: Annotated[
        int | None, typer.Option(help="Threads searching shards in parallel (0 = cores).")
    ] = None,
    search_batch_rows: Annotated[
        int | None,
        typer.Option(help="Concurrent queries coalesced into one faiss call (<= 1: off)."),
    ] = None,
    index_device: Annotated[
        str | None,
        typer.Option(help="Where shard indexes live: auto (GPUs when faiss sees them), cpu, gpu."),
    ] = None,
    tls_cert_file: TlsCertOpt = None,
    tls_key_file: TlsKeyOpt = None,
    tls_ca_file: TlsCaOpt = None,
    tls_client_auth: TlsClientAuthOpt = None,
    plaintext: PlaintextOpt = None,
    health_port: HealthPortOpt = None,
    ready_file: ReadyFileOpt = None,
) -> None:
    """Serve sharded, durable FAISS collections over gRPC (vitrine.v1.IndexService)."""
    params = dict(locals())
    from index_service.config import IndexConfig
    from index_service.server import main
    from vitrine.serving.config import ConfigError, load_config

    overrides = {k: v for k, v in params.items() if k not in ("config", "ready_file")}
    overrides["data_dir"] = str(data_dir) if data_dir else None
    try:
        cfg = load_config(IndexConfig, config, overrides)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    main(cfg, ready_file)


@serve_app.command("gateway")
def serve_gateway(
    encoder: Annotated[str | None, typer.Option(help="Encoder service address.")] = None,
    index: Annotated[
        list[str] | None,
        typer.Option("--index", help="Index service address; repeat for each process."),
    ] = None,
    collection: Annotated[str | None, typer.Option(help="Product collection name.")] = None,
    config: ConfigOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    metrics_port: MetricsPortOpt = None,
    allow_partial: Annotated[
        bool | None, typer.Option(help="Answer with partial results when a shard is down.")
    ] = None,
    embed_cache_size: Annotated[
        int | None, typer.Option(help="Query-embedding cache entries (0 = off).")
    ] = None,
    http_port: Annotated[
        int | None,
        typer.Option(help="HTTP/JSON API port (docs/http-api.md); 0 = a free one, -1 = off."),
    ] = None,
    media_dir: Annotated[
        str | None,
        typer.Option(help="Directory of product photos the HTTP port serves under /media/."),
    ] = None,
    tls_cert_file: TlsCertOpt = None,
    tls_key_file: TlsKeyOpt = None,
    tls_ca_file: TlsCaOpt = None,
    tls_client_auth: TlsClientAuthOpt = None,
    plaintext: PlaintextOpt = None,
    health_port: HealthPortOpt = None,
    ready_file: ReadyFileOpt = None,
) -> None:
    """Serve the public product-search API (vitrine.v1.SearchService)."""
    params = dict(locals())
    from gateway.config import GatewayConfig
    from gateway.server import main
    from vitrine.serving.config import ConfigError, load_config

    overrides = {k: v for k, v in params.items() if k not in ("config", "ready_file", "index")}
    overrides["index_endpoints"] = index or None
    try:
        cfg = load_config(GatewayConfig, config, overrides)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    main(cfg, ready_file)
