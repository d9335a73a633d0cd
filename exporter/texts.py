"""Text variants of a product used for training (title + attribute phrases) and eval queries."""

from __future__ import annotations

from vitrine.catalog import Product

_ARTICLE_NAMES = {"Tshirts": "T-Shirts"}


def attribute_phrase(attrs: dict[str, str], with_usage: bool = False) -> str | None:
    """ "Men Navy Blue Shirts" from gender, baseColour and articleType (None if any is missing)."""
    parts = [attrs.get("gender"), attrs.get("baseColour"), attrs.get("articleType")]
    if not all(parts):
        return None
    parts[2] = _ARTICLE_NAMES.get(parts[2], parts[2])
    if with_usage and attrs.get("usage"):
        parts.insert(0, attrs["usage"])
    return " ".join(parts)


def text_variants(p: Product) -> list[str]:
    """Index 0 is always the title; the rest are attribute-based augmentations."""
    out = [p.title]
    for with_usage in (False, True):
        phrase = attribute_phrase(p.attributes, with_usage)
        if phrase and phrase not in out:
            out.append(phrase)
    return out
