"""Composed-query triplets from catalog attributes: (reference product, one changed attribute
value, the products that answer it), over one pool of catalog rows (a split part).

For a reference with articleType *t* and gender *g* and a change of attribute *a* to value *v*
(*v* is not the reference's), the targets are the pool's products of type *t* and gender *g*
(gender *v* when the gender is what changes) whose attribute *a* is *v*. Products missing the
type, the gender or the changed attribute are never references; values without a modifier
phrasing are never targets of a change. Which targets matter most (the ones that look like the
reference) is decided with the image embeddings at training time, not here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from exporter.compose.phrases import CHANGES, modifier_phrases, target_phrase
from vitrine.catalog import Product


@dataclass
class Triplets:
    """Composed queries over a pool; indices are positions in ``rows`` (the gallery order)."""

    rows: np.ndarray  # int64 [N]: catalog rows of the pool
    ref: np.ndarray  # int64 [Q]: the reference's position in the pool
    key: np.ndarray  # int64 [Q]: index into ``keys`` (attribute, new value)
    targets: list[np.ndarray]  # [Q] int64 arrays of pool positions
    keys: list[tuple[str, str]] = field(default_factory=list)
    # int64 [N]: a code per (articleType, gender) of each pool product (-1: either missing);
    # a query's targets all share one, and the pool's products with it are its hard negatives.
    group: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # [Q]: the target written out from the catalog attributes ("Women Red Sweaters"): the
    # text-only baseline, and a training-time teacher.
    written: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ref)

    def attribute(self, q: int) -> str:
        return self.keys[self.key[q]][0]

    @property
    def attributes(self) -> np.ndarray:
        """The changed attribute of every query (str array)."""
        names = np.asarray([k[0] for k in self.keys] or [""], dtype=object)
        return names[self.key] if len(self.key) else np.zeros(0, dtype=object)

    def counts(self) -> dict[str, int]:
        attrs = self.attributes
        return {a: int((attrs == a).sum()) for a in CHANGES if (attrs == a).any()}

    def subset(self, keep: np.ndarray) -> Triplets:
        idx = np.flatnonzero(keep) if keep.dtype == bool else np.asarray(keep)
        return Triplets(
            self.rows,
            self.ref[idx],
            self.key[idx],
            [self.targets[i] for i in idx],
            self.keys,
            self.group,
            [self.written[i] for i in idx] if self.written else [],
        )


def build_triplets(
    products: list[Product],
    rows,
    attributes=tuple(CHANGES),
    min_targets: int = 1,
) -> Triplets:
    """Every (reference, change) of the pool ``rows`` with at least ``min_targets`` targets."""
    rows = np.asarray(rows, dtype=np.int64)
    # (articleType, gender or None for gender changes, attribute) -> value -> pool positions
    groups: dict[tuple, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    type_gender: dict[tuple[str, str], int] = {}
    group = np.full(len(rows), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        a = products[r].attributes
        t, g = a.get("articleType"), a.get("gender")
        if not t or not g:
            continue
        group[i] = type_gender.setdefault((t, g), len(type_gender))
        for attr in attributes:
            v = a.get(attr)
            if v and modifier_phrases(attr, v):
                groups[(t, None if attr == "gender" else g, attr)][v].append(i)
    keys: dict[tuple[str, str], int] = {}
    ref, key, targets, written = [], [], [], []
    for i, r in enumerate(rows):
        a = products[r].attributes
        t, g = a.get("articleType"), a.get("gender")
        if not t or not g:
            continue
        for attr in attributes:
            current = a.get(attr)
            if not current:
                continue
            by_value = groups.get((t, None if attr == "gender" else g, attr), {})
            for v in sorted(by_value):
                if v == current or len(by_value[v]) < min_targets:
                    continue
                ref.append(i)
                key.append(keys.setdefault((attr, v), len(keys)))
                targets.append(np.asarray(by_value[v], dtype=np.int64))
                written.append(target_phrase(a, attr, v))
    return Triplets(
        rows,
        np.asarray(ref, dtype=np.int64),
        np.asarray(key, dtype=np.int64),
        targets,
        list(keys),
        group,
        written,
    )


def query_phrases(triplets: Triplets, seed: int = 0) -> list[str]:
    """One modifier phrasing per query, drawn with a seeded generator (evaluation)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in triplets.key:
        options = modifier_phrases(*triplets.keys[k])
        out.append(options[int(rng.integers(len(options)))])
    return out
