"""Catalog ingest and search through the gateway, with progress and readable output (CLI, demo)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from rich.console import Console
from rich.table import Table

from gateway.client import SearchClient, product
from gateway.config import IMAGE_URL_ATTRIBUTE
from gateway.playground import MEDIA_PREFIX
from vitrine.catalog import Catalog
from vitrine.filters import all_of, between, eq, is_in, not_
from vitrine.progress import progress_bar
from vitrine.v1 import common_pb2, gateway_pb2

_CMP = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(!=|>=|<=|=|<|>|\bin\b)\s*(.+?)\s*$")


def parse_filter(exprs: list[str]) -> common_pb2.Filter | None:
    """``["gender=Men", "baseColour in Navy Blue|Blue", "price<50"]`` → one AND filter."""
    parts = []
    for expr in exprs:
        m = _CMP.match(expr)
        if not m:
            raise ValueError(
                f"cannot read filter {expr!r} (use field=value, field!=v, field in a|b, field<n)"
            )
        field, op, raw = m.groups()
        if op == "in":
            parts.append(is_in(field, [v.strip() for v in raw.split("|")]))
        elif op in ("<", "<=", ">", ">="):
            key = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[op]
            parts.append(between(field, **{key: float(raw)}))
        else:
            value: str | float = raw
            with contextlib.suppress(ValueError):
                value = float(raw)
            parts.append(eq(field, value) if op == "=" else not_(eq(field, value)))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else all_of(*parts)


def image_url(p, prefix: str, attribute: str = IMAGE_URL_ATTRIBUTE) -> dict[str, str]:
    """The image URL attribute of catalog product ``p``: the catalog's own URL, else ``prefix``
    + the photo's file name (where the gateway's ``media_dir`` serves the catalog's images/);
    none without either."""
    if p.image_url:
        return {attribute: p.image_url}
    if prefix and p.image_path is not None:
        return {attribute: prefix + p.image_path.name}
    return {}


def ingest_catalog(
    client: SearchClient,
    catalog: Catalog,
    batch: int = 32,
    quiet: bool = False,
    fill_missing: bool = False,
    image_url_prefix: str = MEDIA_PREFIX,
):
    """Stream the catalog to the gateway; returns the IngestProductsResponse.

    Each product gets an image URL attribute (:func:`image_url`) so that the playground shows
    its photo; ``image_url_prefix=""`` stores none for products without a catalog URL."""
    products = catalog.products

    with progress_bar(disable=quiet) as progress:
        task = progress.add_task("ingest", total=len(products), info="")

        def batches() -> Iterator[list]:
            for s in range(0, len(products), batch):
                part = products[s : s + batch]
                yield [
                    product(
                        p.id,
                        p.title,
                        {**p.attributes, **image_url(p, image_url_prefix)},
                        p.image_path.read_bytes() if p.image_path else b"",
                    )
                    for p in part
                ]
                progress.advance(task, len(part))

        return client.ingest(batches(), timeout=3600, fill_missing=fill_missing)


def print_failures(resp, console: Console) -> None:
    if not resp.failures:
        return
    t = Table(title=f"{resp.failed} products failed")
    t.add_column("id")
    t.add_column("code", justify="right")
    t.add_column("message")
    for f in resp.failures[:50]:
        t.add_row(f.id, str(f.code), f.message)
    console.print(t)


def modes(resp) -> str:
    """ "hybrid retrieval", "vector retrieval, composed by the model", ..."""
    retrieval = gateway_pb2.RetrievalMode.Name(resp.retrieval_mode)
    out = retrieval.removeprefix("RETRIEVAL_MODE_").lower() + " retrieval"
    if resp.compose_mode:
        compose = gateway_pb2.ComposeMode.Name(resp.compose_mode).removeprefix("COMPOSE_MODE_")
        out += ", composed by " + ("the model" if compose == "MODEL" else "the weighted sum")
    return out


def _timings(resp) -> str:
    return ", ".join(f"{x.stage} {x.seconds * 1000:.1f} ms" for x in resp.timings)


def print_side_by_side(
    title: str, before, after, console: Console, labels: tuple[str, str] | None = None
) -> None:
    """The same query two ways (default: retrieval order and reranked), top results side by
    side."""
    first, second = labels or ("retrieval order", f"reranked (top {after.reranked})")
    t = Table(title=title)
    t.add_column("#", justify="right")
    for col in (first, "score", second, "score"):
        t.add_column(col, justify="right" if col == "score" else "left")
    for i in range(max(len(before.results), len(after.results))):
        cells = [str(i + 1)]
        for resp in (before, after):
            if i < len(resp.results):
                r = resp.results[i]
                cells += [f"{r.caption} [dim]({r.product_id})[/dim]", f"{r.score:.3f}"]
            else:
                cells += ["", ""]
        t.add_row(*cells)
    console.print(t)
    for label, resp in ((first, before), (second, after)):
        degraded = (
            f"  [red]degraded: {', '.join(resp.degraded_stages)}[/red]"
            if resp.degraded_stages
            else ""
        )
        console.print(f"[dim]{label}: {modes(resp)}; {_timings(resp)}[/dim]{degraded}")


def print_description(title: str, d, console: Console) -> None:
    """A Description (Describe, or a search's query_description) as a small table."""
    t = Table(title=f"{title}: [bold]{d.title}[/bold]", show_header=True)
    t.add_column("attribute")
    t.add_column("value")
    t.add_column("confidence", justify="right")
    for a in d.attributes:
        t.add_row(a.name, a.value, f"{a.confidence:.2f}")
    console.print(t)
    console.print(f"[dim]model {d.model}[/dim]")


def print_search(title: str, resp, console: Console) -> None:
    t = Table(title=title + ("  [red](partial)[/red]" if resp.partial else ""))
    for col in ("#", "score", "id", "title", "gender", "colour", "type"):
        t.add_column(col, justify="right" if col in ("#", "score") else "left")
    for i, r in enumerate(resp.results, 1):
        a = r.attributes

        def s(key: str, a=a) -> str:
            return a[key].string_value if key in a else ""

        t.add_row(
            str(i),
            f"{r.score:.3f}",
            r.product_id,
            r.caption,
            s("gender"),
            s("baseColour"),
            s("articleType"),
        )
    console.print(t)
    if resp.HasField("query_description"):
        console.print(f"looks like: [bold]{resp.query_description.title}[/bold]")
    extra = f", reranked {resp.reranked}" if resp.reranked else ""
    console.print(f"[dim]{modes(resp)}; stages: {_timings(resp)}{extra}[/dim]")


def print_facets(resp, console: Console) -> None:
    """One table per attribute: its values with their counts (numbers: min, max, count)."""
    note = "  [red](partial)[/red]" if resp.partial else ""
    console.print(f"{resp.matched} products{note}")
    for f in resp.facets:
        t = Table(title=f.field + ("  (more values not shown)" if f.truncated else ""))
        t.add_column("value")
        t.add_column("products", justify="right")
        for v in f.values:
            kind = v.value.WhichOneof("kind")
            t.add_row(str(getattr(v.value, kind)) if kind else "", str(v.count))
        if f.HasField("numbers"):
            n = f.numbers
            t.add_row(f"numbers {n.min:g} .. {n.max:g}", str(n.count))
        console.print(t)
