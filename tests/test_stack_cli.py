"""`vitrine up`'s local stack and the `ingest` / `search` commands, against real processes."""

from __future__ import annotations

import json
import urllib.request

import pytest
from typer.testing import CliRunner

from tests.support.tiny_models import publish_image, publish_text
from vitrine.catalog import deterministic_subset, load_catalog, write_catalog
from vitrine.cli import app
from vitrine.cli.shop import parse_filter
from vitrine.cli.stack import LocalStack


def test_parse_filter():
    f = parse_filter(["gender=Men", "baseColour in Navy Blue|Blue", "price<50", "usage!=Sports"])
    kinds = [x.WhichOneof("expr") for x in f.all_of.filters]
    assert kinds == ["equals", "is_in", "range", "negation"]
    assert [v.string_value for v in f.all_of.filters[1].is_in.values] == ["Navy Blue", "Blue"]
    assert f.all_of.filters[2].range.lt == 50
    assert parse_filter([]) is None
    with pytest.raises(ValueError, match="cannot read filter"):
        parse_filter(["nonsense"])


@pytest.mark.slow
def test_stack_ingest_and_search_commands(tmp_path, demo_catalog):
    models = tmp_path / "models"
    publish_text(models, "vitrine-text", dim=16)
    publish_image(models, "vitrine-image", dim=16)
    small = write_catalog(deterministic_subset(demo_catalog.products, 40), tmp_path / "cat")
    catalog = load_catalog(small)
    runner = CliRunner()
    with LocalStack(
        models,
        tmp_path / "data",
        ports=(0, 0, 0, 0),
        metrics_ports=(-1,) * 4,
        media_dir=small / "images",
    ) as stack:
        assert [s.name for s in stack.services] == ["encoder", "index-a", "index-b", "gateway"]
        res = runner.invoke(app, ["ingest", "--catalog", str(small), "--gateway", stack.gateway])
        assert res.exit_code == 0, res.output
        assert "indexed 40" in res.output
        # the playground and the photos, on the gateway's HTTP port (plain HTTP on 127.0.0.1
        # while gRPC is TLS): ingest stored each product's /media/ URL
        url = stack.playground_url
        assert url and url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as r:
            assert b"Vitrine playground" in r.read()
        res = runner.invoke(
            app, ["search", "shirt", "-k", "1", "--json", "--gateway", stack.gateway]
        )
        (hit,) = json.loads(res.stdout)["results"]
        photo = hit["attributes"]["image_url"]["string_value"]
        assert photo == f"/media/{hit['product_id']}.jpg"
        with urllib.request.urlopen(url.rstrip("/") + photo, timeout=10) as r:
            assert r.read() == (small / "images" / f"{hit['product_id']}.jpg").read_bytes()
        probe = catalog.products[5]
        res = runner.invoke(
            app, ["search", "--image", str(probe.image_path), "-k", "3", "--gateway", stack.gateway]
        )
        assert res.exit_code == 0, res.output
        assert probe.id in res.output.split("│ 1 │")[1].split("\n")[0]
        gender = probe.attributes["gender"]
        res = runner.invoke(
            app, ["search", "shirt", "--filter", f"gender={gender}", "--gateway", stack.gateway]
        )
        assert res.exit_code == 0, res.output
        others = {"Men", "Women", "Boys", "Girls", "Unisex"} - {gender}
        assert not any(f" {o} " in res.output for o in others)
        args = ["search", "shirt", "-k", "4", "--filter", f"gender={gender}", "--json"]
        res = runner.invoke(app, [*args, "--gateway", stack.gateway])
        assert res.exit_code == 0, res.output
        body = json.loads(res.stdout)  # one JSON object, nothing else on stdout
        assert 0 < len(body["results"]) <= 4
        assert all(r["attributes"]["gender"]["string_value"] == gender for r in body["results"])
        assert body["stages_run"][:2] == ["encode", "search"] and body["timings"]
        assert body["retrieval_mode"] == "RETRIEVAL_MODE_HYBRID"  # the default for text
        assert all("lexical_score" in r and "retrieval_score" in r for r in body["results"])
        args = ["facets", "gender", "--filter", f"gender={gender}", "--gateway", stack.gateway]
        res = runner.invoke(app, args)
        want = sum(p.attributes.get("gender") == gender for p in catalog.products)
        assert res.exit_code == 0 and f"{want} products" in res.output, res.output
        res = runner.invoke(app, ["facets", "--json", "--limit", "3", "--gateway", stack.gateway])
        body = json.loads(res.stdout)
        assert body["matched"] == "40" and all(len(f["values"]) <= 3 for f in body["facets"])
        assert "image_url" not in {f["field"] for f in body["facets"]}
        args = ["search", "shirt", "--mode", "lexical", "--json", "--gateway", stack.gateway]
        body = json.loads(runner.invoke(app, args).stdout)
        assert body["retrieval_mode"] == "RETRIEVAL_MODE_LEXICAL"
        assert body["stages_run"][0] == "search"
        res = runner.invoke(app, ["search", "shirt", "--mode", "fuzzy", "--gateway", stack.gateway])
        assert res.exit_code != 0 and "--mode" in res.output
        procs = [s.proc for s in stack.services]
    assert all(p.poll() == 0 for p in procs)  # SIGTERM: every process drained and exited 0
