"""Shop commands over a running stack: up, ingest, search, describe, facets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitrine.cli.app import (
    DEFAULT_MODELS,
    ApiKeyOpt,
    CaFileOpt,
    CatalogOpt,
    CertFileOpt,
    GatewayOpt,
    KeyFileOpt,
    ModelsOpt,
    app,
)


def _client(gateway, ca_file, cert_file, key_file, api_key, timeout: float = 30.0):
    """The gateway client for the connection options (vitrine.cli.connect)."""
    from vitrine.cli.connect import gateway_client

    try:
        return gateway_client(
            gateway,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            api_key=api_key,
            timeout=timeout,
        )
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from exc


FilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--filter", help="field=value, field!=value, field in a|b, field<n; repeatable (AND)."
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the response as one JSON object (scripts).")
]


def _filter(exprs: list[str] | None):
    """The Filter of the --filter options (None: none), or a usage error naming the option."""
    from vitrine.cli.shop import parse_filter

    try:
        return parse_filter(exprs or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--filter") from exc


def _echo_json(resp) -> None:
    """A response message as one line of JSON (proto field names, every field)."""
    import json

    from google.protobuf.json_format import MessageToDict

    as_dict = MessageToDict(
        resp, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    typer.echo(json.dumps(as_dict))


ImageUrlPrefixOpt = Annotated[
    str,
    typer.Option(
        help="Products without a catalog image_url get PREFIX + their photo's file name as image "
        "URL (where the gateway's --media-dir serves the photos); '' stores none."
    ),
]


@app.command()
def up(
    models: ModelsOpt = DEFAULT_MODELS,
    data_dir: Annotated[Path, typer.Option(help="Index data (two processes: a/, b/).")] = Path(
        "data/index"
    ),
    catalog: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="Catalog whose photos the playground shows (default: the embedded demo catalog).",
        ),
    ] = None,
    ingest: Annotated[
        bool, typer.Option("--ingest", help="Ingest that catalog once the services are up.")
    ] = False,
    http_port: Annotated[
        int, typer.Option(min=-1, max=65535, help="HTTP API and playground port (-1: off).")
    ] = 8080,
    plaintext: Annotated[
        bool,
        typer.Option(
            "--plaintext",
            help="No TLS (default: TLS, a throwaway local CA and certificates in <data-dir>/tls/).",
        ),
    ] = False,
) -> None:
    """Start an encoder, two index processes (half the shards each) and a gateway with the
    playground page on its HTTP port; Ctrl-C stops all."""
    import signal as _signal
    import threading

    from rich.console import Console

    from gateway.client import SearchClient
    from vitrine.catalog import DEMO_CATALOG_DIR, load_catalog
    from vitrine.cli.shop import ingest_catalog, print_failures
    from vitrine.cli.stack import LocalStack

    root = catalog or DEMO_CATALOG_DIR
    media = root / "images" if (root / "images").is_dir() else None
    stack = LocalStack(models, data_dir, tls=not plaintext, http_port=http_port, media_dir=media)
    typer.echo("starting encoder, index-a, index-b, gateway ...")
    stack.start()
    for svc in stack.services:
        typer.echo(
            f"  {svc.name:8s} {svc.target}  metrics :{svc.info.get('metrics_port')}  pid {svc.info['pid']}"
        )
    tls = stack.client_tls()
    if tls is not None:
        typer.echo(f"  TLS (mTLS inside): CA {tls.ca_file}; client cert {tls.cert_file}")
    try:
        with SearchClient(stack.gateway, timeout=3600, tls=tls) as client:
            if ingest:
                resp = ingest_catalog(client, load_catalog(root))
                typer.echo(f"ingested {resp.succeeded} of {resp.received} products from {root}")
                print_failures(resp, Console())
            products = client.facets(fields=["title"], limit=1).matched
    except BaseException:
        stack.stop()
        raise
    typer.echo(f"ready: gateway at {stack.gateway}; {products} products; logs in {stack.log_dir}.")
    if stack.playground_url:
        hint = "" if products else " (empty: `vitrine ingest`, or restart with --ingest)"
        typer.echo(f"playground: {stack.playground_url}{hint}")
    typer.echo("Ctrl-C stops everything.")
    done = threading.Event()
    for sig in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(sig, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            dead = [s.name for s in stack.services if s.proc.poll() is not None]
            if dead:
                typer.echo(f"stopped unexpectedly: {dead}", err=True)
                break
    finally:
        typer.echo("stopping ...")
        stack.stop()
        typer.echo("stopped")


@app.command()
def ingest(
    catalog: CatalogOpt = None,
    gateway: GatewayOpt = "127.0.0.1:50050",
    batch: Annotated[int, typer.Option(min=1, max=1000, help="Products per streamed batch.")] = 32,
    fill_missing: Annotated[
        bool,
        typer.Option(help="Generate missing titles/attributes from the photos (caption model)."),
    ] = False,
    image_url_prefix: ImageUrlPrefixOpt = "/media/",  # gateway.playground.MEDIA_PREFIX
    ca_file: CaFileOpt = None,
    cert_file: CertFileOpt = None,
    key_file: KeyFileOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Stream a catalog (titles, attributes, photos) into the search index through the gateway."""
    from rich.console import Console

    from vitrine.catalog import load_catalog
    from vitrine.cli.shop import ingest_catalog, print_failures

    cat = load_catalog(catalog)
    with _client(gateway, ca_file, cert_file, key_file, api_key, timeout=3600) as client:
        resp = ingest_catalog(
            client, cat, batch, fill_missing=fill_missing, image_url_prefix=image_url_prefix
        )
    console = Console()
    console.print(f"received {resp.received}, indexed {resp.succeeded}, failed {resp.failed}")
    print_failures(resp, console)
    if resp.failed:
        raise typer.Exit(1)


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="Query text (may be empty with --image).")] = "",
    image: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Query photo.")
    ] = None,
    filter_: FilterOpt = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000)] = 10,
    text_weight: Annotated[float, typer.Option(min=0)] = 0.0,
    image_weight: Annotated[float, typer.Option(min=0)] = 0.0,
    rerank: Annotated[
        bool | None,
        typer.Option(help="Rerank the candidates (default: the server's setting)."),
    ] = None,
    rerank_candidates: Annotated[
        int, typer.Option(min=0, max=200, help="Candidates to rerank (0 = server default).")
    ] = 0,
    describe: Annotated[
        bool, typer.Option(help="Also say what the query photo shows (caption model).")
    ] = False,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            help="Retrieval: vector, lexical or hybrid (default: the server's; hybrid for text).",
        ),
    ] = None,
    compose: Annotated[
        str | None,
        typer.Option(help="Photo + text: model (the composition model) or weighted."),
    ] = None,
    as_json: JsonOpt = False,
    gateway: GatewayOpt = "127.0.0.1:50050",
    ca_file: CaFileOpt = None,
    cert_file: CertFileOpt = None,
    key_file: KeyFileOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Search products by text, photo or both, with filters; prints a table (or JSON)."""
    from rich.console import Console

    from vitrine.cli.shop import print_search

    flt = _filter(filter_)
    if mode not in (None, "vector", "lexical", "hybrid"):
        raise typer.BadParameter("--mode: vector, lexical or hybrid")
    if compose not in (None, "model", "weighted"):
        raise typer.BadParameter("--compose: model or weighted")
    with _client(gateway, ca_file, cert_file, key_file, api_key) as client:
        resp = client.search(
            text=text,
            image=image.read_bytes() if image else b"",
            k=k,
            filter=flt,
            text_weight=text_weight,
            image_weight=image_weight,
            rerank=rerank,
            rerank_candidates=rerank_candidates,
            describe_query=describe,
            retrieval_mode=mode,
            compose=compose,
        )
    if as_json:
        _echo_json(resp)
        return
    what = " + ".join(
        x for x in (repr(text) if text else "", f"photo {image.name}" if image else "") if x
    )
    print_search(f"search: {what}", resp, Console())


@app.command()
def describe(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Product photo.")],
    beam: Annotated[int, typer.Option(min=0, max=8, help="Beam width (0 = model default).")] = 0,
    gateway: GatewayOpt = "127.0.0.1:50050",
    ca_file: CaFileOpt = None,
    cert_file: CertFileOpt = None,
    key_file: KeyFileOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Suggest a title and attributes for a product photo (the listing assistant)."""
    from rich.console import Console

    from vitrine.cli.shop import print_description

    with _client(gateway, ca_file, cert_file, key_file, api_key) as client:
        d = client.describe(image.read_bytes(), beam=beam)
    print_description(f"describe {image.name}", d, Console())


@app.command()
def facets(
    fields: Annotated[
        list[str] | None, typer.Argument(help="Attributes to count (default: all).")
    ] = None,
    filter_: FilterOpt = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="Values per attribute, most frequent first.")
    ] = 10,
    as_json: JsonOpt = False,
    gateway: GatewayOpt = "127.0.0.1:50050",
    ca_file: CaFileOpt = None,
    cert_file: CertFileOpt = None,
    key_file: KeyFileOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Attribute values and how many products hold each (over the products --filter selects)."""
    from rich.console import Console

    from vitrine.cli.shop import print_facets

    flt = _filter(filter_)
    with _client(gateway, ca_file, cert_file, key_file, api_key) as client:
        resp = client.facets(fields or [], limit, flt)
    if as_json:
        _echo_json(resp)
        return
    print_facets(resp, Console())
