"""Modifier phrases ("in red", "for men", "for formal wear", "for summer") and the text-only
attribute phrase of a composed query's target ("Women Red Sweaters").

A modifier names one changed attribute value, in one of several phrasings; colours are written
in lower case ("navy blue"). Training draws a phrasing at random per step; evaluation draws one
per query with a seeded generator.
"""

from __future__ import annotations

from exporter.texts import _ARTICLE_NAMES, attribute_phrase

# The attributes a modifier may change, and how reports name them.
CHANGES = {"baseColour": "colour", "gender": "gender", "usage": "usage", "season": "season"}

COLOUR_TEMPLATES = (
    "in {v}",
    "but {v}",
    "{v} one",
    "make it {v}",
    "the {v} version",
    "same but {v}",
    "in {v} instead",
    "{v}",
    "i want it in {v}",
    "{v} colour",
)
# Catalog colours whose lower-case name is not what a shopper writes.
COLOUR_WORDS = {"Multi": "multicoloured"}

VALUE_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "gender": {
        "Men": ("for men", "men's version", "for him", "make it for men", "in men's", "men"),
        "Women": (
            "for women",
            "women's version",
            "for her",
            "make it for women",
            "in women's",
            "women",
        ),
        "Boys": ("for boys", "boys' version", "for a boy", "make it for boys", "boys"),
        "Girls": ("for girls", "girls' version", "for a girl", "make it for girls", "girls"),
        "Unisex": ("unisex", "unisex version", "for men and women", "make it unisex"),
    },
    "usage": {
        "Casual": (
            "casual",
            "for casual wear",
            "more casual",
            "make it casual",
            "for everyday wear",
            "casual version",
        ),
        "Formal": (
            "formal",
            "for formal wear",
            "for the office",
            "make it formal",
            "more formal",
            "formal version",
        ),
        "Sports": (
            "for sports",
            "sporty",
            "for the gym",
            "make it sporty",
            "for running",
            "sports version",
        ),
        "Ethnic": (
            "ethnic",
            "ethnic wear",
            "traditional",
            "make it ethnic",
            "in traditional style",
            "ethnic version",
        ),
        "Smart Casual": ("smart casual", "for smart casual wear", "make it smart casual"),
        "Travel": ("for travel", "for travelling", "travel version"),
    },
    "season": {
        "Summer": (
            "for summer",
            "summer version",
            "for hot weather",
            "make it for summer",
            "summery",
            "summer",
        ),
        "Winter": (
            "for winter",
            "winter version",
            "for cold weather",
            "make it warmer",
            "wintry",
            "winter",
        ),
        "Fall": (
            "for fall",
            "for autumn",
            "autumn version",
            "fall version",
            "make it for autumn",
            "autumn",
        ),
        "Spring": ("for spring", "spring version", "springtime", "make it for spring", "spring"),
    },
}


def colour_word(value: str) -> str:
    return COLOUR_WORDS.get(value, value.lower())


def modifier_phrases(attribute: str, value: str) -> tuple[str, ...]:
    """Every phrasing of "change ``attribute`` to ``value``" (empty if there is none)."""
    if attribute == "baseColour":
        return tuple(t.format(v=colour_word(value)) for t in COLOUR_TEMPLATES)
    if attribute not in CHANGES:
        raise ValueError(f"no modifier phrases for attribute {attribute!r}")
    return VALUE_PHRASES[attribute].get(value, ())


def target_phrase(reference: dict[str, str], attribute: str, value: str) -> str:
    """The text-only query for the target: the reference's gender, colour and type with the one
    change applied ("Women Red Sweaters", as :func:`exporter.texts.attribute_phrase` writes
    them); a usage or season change is put in front ("Formal Men Black Shirts", "Summer Men
    Black Shirts"). A missing gender or colour is left out."""
    attrs = {**reference, attribute: value}
    phrase = attribute_phrase(attrs)
    if phrase is None:
        t = attrs.get("articleType", "")
        t = _ARTICLE_NAMES.get(t, t)
        phrase = " ".join(x for x in (attrs.get("gender"), attrs.get("baseColour"), t) if x)
    return f"{value} {phrase}" if attribute in ("usage", "season") else phrase
