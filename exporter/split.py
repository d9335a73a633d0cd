"""Train/validation/test split by product id, keeping products with the same title together.

Products are grouped by :func:`vitrine.preprocess.normalize_title`; groups are ordered by a seeded
hash and assigned to test, then validation, filling each to its exact target size (a group that
would overflow is skipped and tried for the next split), the rest is training data. The result
depends only on the ids, titles and seed: never on row order or the machine.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

from vitrine.catalog import Product
from vitrine.preprocess import normalize_title


@dataclass(frozen=True)
class Split:
    train: list[int]
    val: list[int]
    test: list[int]

    def part(self, name: str) -> list[int]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def default_sizes(n: int) -> tuple[int, int]:
    """(test, val): 1,000 and 500 on the full catalog, at most 15% and 10% of smaller ones."""
    return min(1000, int(n * 0.15)), min(500, int(n * 0.10))


def split_products(
    products: list[Product],
    test_size: int | None = None,
    val_size: int | None = None,
    seed: int = 0,
) -> Split:
    d_test, d_val = default_sizes(len(products))
    test_size = d_test if test_size is None else test_size
    val_size = d_val if val_size is None else val_size
    groups: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(products):
        groups[normalize_title(p.title)].append(i)
    order = sorted(groups, key=lambda t: hashlib.sha256(f"{seed}:{t}".encode()).hexdigest())
    test: list[int] = []
    val: list[int] = []
    train: list[int] = []
    for t in order:
        members = groups[t]
        if len(test) + len(members) <= test_size and len(test) < test_size:
            test.extend(members)
        elif len(val) + len(members) <= val_size and len(val) < val_size:
            val.extend(members)
        else:
            train.extend(members)
    return Split(sorted(train), sorted(val), sorted(test))


def recorded_split(products: list[Product], info: dict) -> Split:
    """The split a training run recorded (its ``split`` entry: seed and sizes); sizes it does
    not record take the defaults for ``products``."""
    return split_products(
        products, info.get("test_size"), info.get("val_size"), info.get("seed", 0)
    )
