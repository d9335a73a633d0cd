"""Product catalogs on disk: ``catalog.csv`` (id, title, attributes) plus ``images/<id>.jpg``.

An optional ``image_url`` column holds the shop's own URL of each product photo (a CDN); where
it is absent, ``vitrine ingest`` stores the URL under which the gateway serves ``images/``
(``/media/<id>.jpg``, see ``gateway.playground``).

The embedded demo catalog (a deterministic subset of the real Fashion Product Images data) ships
inside this package, so ``make demo`` and the tests work where ``../shared`` is absent. Every tool
takes ``--catalog DIR`` for the full set.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

ATTRIBUTE_COLUMNS = (
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "usage",
)
DEMO_CATALOG_DIR = Path(__file__).resolve().parent / "data" / "demo_catalog"


@dataclass(frozen=True)
class Product:
    id: str
    title: str
    attributes: dict[str, str] = field(default_factory=dict)
    image_path: Path | None = None
    image_url: str = ""  # the shop's URL of the photo (catalog.csv column image_url), if any


@dataclass
class Catalog:
    root: Path
    products: list[Product]

    def __len__(self) -> int:
        return len(self.products)

    def by_id(self) -> dict[str, Product]:
        return {p.id: p for p in self.products}

    def fingerprint(self) -> str:
        """Stable hash of the rows and image bytes (goes into model manifests as the data hash)."""
        h = hashlib.sha256()
        for p in self.products:
            h.update(p.id.encode())
            h.update(b"\x00" + p.title.encode())
            for k in sorted(p.attributes):
                h.update(b"\x00" + k.encode() + b"=" + p.attributes[k].encode())
            if p.image_url:
                h.update(b"\x00image_url=" + p.image_url.encode())
            if p.image_path is not None:
                h.update(hashlib.sha256(p.image_path.read_bytes()).digest())
        return h.hexdigest()


def load_catalog(root: str | Path | None = None, require_images: bool = True) -> Catalog:
    """Load ``root/catalog.csv``; ``None`` means the embedded demo catalog.

    Rows are sorted by id (numeric ids numerically) so every run sees the same order. Rows whose
    image is missing are an error when ``require_images`` is set.
    """
    root = Path(root) if root is not None else DEMO_CATALOG_DIR
    csv_path = root / "catalog.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(f"no catalog.csv in {root}")
    products: list[Product] = []
    seen: set[str] = set()
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"id", "title"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{csv_path}: missing columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            pid = (row.get("id") or "").strip()
            title = (row.get("title") or "").strip()
            if not pid or not title:
                raise ValueError(f"{csv_path}:{line}: empty id or title")
            if pid in seen:
                raise ValueError(f"{csv_path}:{line}: duplicate id {pid}")
            seen.add(pid)
            attrs = {k: (row.get(k) or "").strip() for k in ATTRIBUTE_COLUMNS if row.get(k)}
            img = root / "images" / f"{pid}.jpg"
            if not img.is_file():
                if require_images:
                    raise FileNotFoundError(f"{csv_path}:{line}: image {img} is missing")
                img = None
            url = (row.get("image_url") or "").strip()
            products.append(Product(pid, title, attrs, img, url))
    products.sort(key=lambda p: (0, int(p.id), "") if p.id.isdigit() else (1, 0, p.id))
    return Catalog(root, products)


def deterministic_subset(
    products: list[Product], n: int, salt: str = "vitrine-demo"
) -> list[Product]:
    """The ``n`` products with the smallest salted SHA-1 of their id: stable and unbiased."""
    ranked = sorted(products, key=lambda p: hashlib.sha1(f"{salt}:{p.id}".encode()).hexdigest())
    return sorted(ranked[:n], key=lambda p: (len(p.id), p.id))


def write_catalog(products: list[Product], dest: str | Path) -> Path:
    """Write products (rows + copied images) as a catalog directory."""
    import shutil

    dest = Path(dest)
    (dest / "images").mkdir(parents=True, exist_ok=True)
    with (dest / "catalog.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        urls = any(p.image_url for p in products)
        w.writerow(["id", "title", *ATTRIBUTE_COLUMNS, *(["image_url"] if urls else [])])
        for p in products:
            row = [p.id, p.title, *(p.attributes.get(k, "") for k in ATTRIBUTE_COLUMNS)]
            w.writerow(row + ([p.image_url] if urls else []))
            if p.image_path is not None:
                shutil.copyfile(p.image_path, dest / "images" / f"{p.id}.jpg")
    return dest
