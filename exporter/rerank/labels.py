"""What the reranker predicts: attribute vocabularies, per-product labels, augmented query texts.

Attributes are the catalog's columns plus the **brand**, which this catalog carries only as the
first word of the title ("Puma Men Black Running Sports Shoes"). A value seen on fewer than
``min_count`` training products folds into ``UNK``.

The image side predicts every attribute of the photo. The text side predicts what a text *says*:
for the attributes people may or may not name (brand, gender, colour) the text label is ``NONE``
when the text does not name it, so "navy blue shirt" constrains the colour and leaves the brand
open. Query-like texts are made from each training product: its title, the title without the
brand, attribute phrases with and without colour/gender, and brand + type.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from exporter.texts import attribute_phrase
from vitrine.catalog import Product
from vitrine.preprocess import normalize_title

ATTRIBUTES = ("brand", "gender", "subCategory", "articleType", "baseColour", "season", "usage")
MENTIONED = ("brand", "gender", "baseColour")  # text label NONE when the text does not name it
UNK, NONE = "<unk>", "<none>"
IGNORE = -100  # no label (the product lacks the attribute)


def brand_of(p: Product) -> str:
    words = normalize_title(p.title).split()
    return words[0] if words else ""


def value_of(p: Product, attr: str) -> str:
    return brand_of(p) if attr == "brand" else p.attributes.get(attr, "")


def mentions(text: str, attr: str, value: str) -> bool:
    """Whether ``text`` names ``value`` of ``attr`` (whole normalised words)."""
    if not value:
        return False
    words = normalize_title(text).split()
    want = normalize_title(value).split()
    if not want:
        return False
    return any(words[i : i + len(want)] == want for i in range(len(words) - len(want) + 1))


@dataclass
class Vocab:
    """Class names per attribute: image classes are ``values + [UNK]``; text adds ``NONE``."""

    classes: dict[str, list[str]]

    @classmethod
    def build(
        cls, products: list[Product], min_count: int = 3, attributes: tuple = ATTRIBUTES
    ) -> Vocab:
        classes = {}
        for a in attributes:
            counts = Counter(v for v in (value_of(p, a) for p in products) if v)
            classes[a] = [*sorted(v for v, c in counts.items() if c >= min_count), UNK]
        return cls(classes)

    def sizes(self) -> dict[str, int]:
        return {a: len(c) for a, c in self.classes.items()}

    def index(self, attr: str, value: str) -> int:
        if not value:
            return IGNORE
        names = self.classes[attr]
        try:
            return names.index(value)
        except ValueError:
            return len(names) - 1  # UNK

    def image_labels(self, products: list[Product]) -> dict[str, np.ndarray]:
        return {
            a: np.asarray([self.index(a, value_of(p, a)) for p in products], dtype=np.int64)
            for a in self.classes
        }

    def text_labels(self, text: str, p: Product) -> dict[str, int]:
        """Labels of one query text made from product ``p`` (NONE = not named in the text)."""
        out = {}
        for a in ATTRIBUTES:
            v = value_of(p, a)
            if a in MENTIONED and not mentions(text, a, v):
                out[a] = len(self.classes[a])  # NONE: one past the image classes
            else:
                out[a] = self.index(a, v)
        return out

    def to_dict(self) -> dict:
        return {"attributes": list(self.classes), "classes": self.classes, "mentioned": MENTIONED}


def query_texts(p: Product) -> list[str]:
    """The title and query-like variants of it (deduplicated, title first)."""
    a = p.attributes
    words = p.title.split()
    out = [p.title]
    if len(words) > 1:
        out.append(" ".join(words[1:]))  # without the brand
    for with_usage in (False, True):
        phrase = attribute_phrase(a, with_usage)
        if phrase:
            out.append(phrase)
    kind = a.get("articleType", "")
    if kind:
        out += [
            " ".join(x for x in (a.get("gender", ""), kind) if x),  # no colour
            " ".join(x for x in (a.get("baseColour", ""), kind) if x),  # no gender
            " ".join(x for x in (brand_of(p).capitalize(), kind) if x),  # brand + type
        ]
    return list(dict.fromkeys(t for t in out if t.strip()))
