"""Rebuild the embedded demo catalog (vitrine/data/demo_catalog) from the full catalog.

    python scripts/make_demo_catalog.py [--source ../shared/data/fashion-products] [--size 600]

The subset is deterministic: the products with the smallest salted SHA-1 of their id
(:func:`vitrine.catalog.deterministic_subset`), so reruns give byte-identical files.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from vitrine.catalog import DEMO_CATALOG_DIR, deterministic_subset, load_catalog, write_catalog

DEFAULT_SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fashion-products"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--size", type=int, default=600)
    ap.add_argument("--dest", type=Path, default=DEMO_CATALOG_DIR)
    args = ap.parse_args()
    subset = deterministic_subset(load_catalog(args.source).products, args.size)
    if args.dest.exists():
        shutil.rmtree(args.dest)
    write_catalog(subset, args.dest)
    print(f"wrote {len(subset)} products to {args.dest}")


if __name__ == "__main__":
    main()
