import filecmp
from pathlib import Path

import pytest

from vitrine.catalog import DEMO_CATALOG_DIR, deterministic_subset, load_catalog, write_catalog

SHARED_CATALOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-products"


def test_demo_catalog_is_complete_and_sorted(demo_catalog):
    assert len(demo_catalog) == 600
    ids = [p.id for p in demo_catalog.products]
    assert len(set(ids)) == 600 and ids == sorted(ids, key=int)
    assert all(p.image_path.is_file() and p.title for p in demo_catalog.products)
    assert sum(1 for p in demo_catalog.products if p.attributes.get("articleType")) > 550


def test_fingerprint_changes_with_content(tmp_path, demo_catalog):
    sub = demo_catalog.products[:5]
    a = load_catalog(write_catalog(sub, tmp_path / "a"))
    b = load_catalog(write_catalog(sub, tmp_path / "b"))
    assert a.fingerprint() == b.fingerprint()
    (tmp_path / "b" / "images" / f"{sub[0].id}.jpg").write_bytes(b"changed")
    assert load_catalog(tmp_path / "b").fingerprint() != a.fingerprint()


def test_bad_catalogs_are_rejected(tmp_path):
    (tmp_path / "catalog.csv").write_text("id,title\n1,Shirt\n1,Other\n")
    with pytest.raises(ValueError, match="duplicate id"):
        load_catalog(tmp_path, require_images=False)
    (tmp_path / "catalog.csv").write_text("id,title\n1,Shirt\n")
    with pytest.raises(FileNotFoundError, match="image"):
        load_catalog(tmp_path)
    assert len(load_catalog(tmp_path, require_images=False)) == 1


@pytest.mark.skipif(not SHARED_CATALOG.is_dir(), reason="full catalog not present")
def test_demo_catalog_is_the_deterministic_subset_of_the_full_catalog(tmp_path):
    full = load_catalog(SHARED_CATALOG)
    write_catalog(deterministic_subset(full.products, 600), tmp_path)
    assert filecmp.cmp(tmp_path / "catalog.csv", DEMO_CATALOG_DIR / "catalog.csv", shallow=False)


def test_image_url_column_and_the_ingested_url(tmp_path, demo_catalog):
    """A catalog's own image_url column wins; else ingest stores the /media/ URL of the photo."""
    import dataclasses

    from vitrine.cli.shop import image_url

    first, second = demo_catalog.products[:2]
    shop = dataclasses.replace(first, image_url="https://cdn.example.com/a.jpg")
    root = write_catalog([shop, second], tmp_path / "cat")
    assert (root / "catalog.csv").read_text().splitlines()[0].endswith(",image_url")
    loaded = load_catalog(root)
    assert [p.image_url for p in loaded.products] == ["https://cdn.example.com/a.jpg", ""]
    assert image_url(loaded.products[0], "/media/") == {"image_url": shop.image_url}
    assert image_url(loaded.products[1], "/media/") == {"image_url": f"/media/{second.id}.jpg"}
    assert image_url(loaded.products[1], "") == {}
    # the URL is part of the data: a changed URL changes the fingerprint, none keeps the old one
    assert load_catalog(write_catalog([first, second], tmp_path / "plain")).fingerprint() != (
        loaded.fingerprint()
    )
    assert "image_url" not in (tmp_path / "plain" / "catalog.csv").read_text()
