"""The lexical (full-text) index of a shard: BM25 over each record's ``text``, on tantivy.

Shoppers type brands ("puma shoes"), model numbers ("MTP-1191A") and typos ("navy blu shirt"),
which an embedding blurs; a full-text index gets them right. Each local shard has one tantivy
index in memory (the Rust engine behind Quickwit: BM25 scoring, segment merging, concurrent
readers while one writer adds).

Analysis (one definition, :func:`analyze`, for documents and queries): NFKC + case folding,
words = runs of letters and digits (so punctuation and hyphens split "MTP-1191A" into "mtp",
"1191a"), and every word's character trigrams with boundary marks ("#mt", "mtp", "tp#"). The
trigrams make a word with one letter dropped or swapped still share most of its grams with the
right one, and a model-number fragment share grams with the whole number; whole words weigh most
because each matches as a word (boosted ×3) *and* as its grams. An earlier run of
benchmarks/hybrid_eval.py (BM25 by bm25s, 2026-11-24) measured the trigrams' worth on titles with
one typo: nDCG@10 0.982 with words alone, 0.995 with words + trigrams.

Durability: the text is part of the record, so it is in the collection's WAL before a write is
acknowledged; it is kept on disk in its own LMDB store (:class:`index_service.payloads.PayloadStore`
under ``<collection>/texts/``, synced at snapshots like the payloads). The tantivy index itself
is derived state: rebuilt from that store at start-up, then brought up to date by the WAL
replay, exactly like the payloads. Nothing of it is lost with a SIGKILL.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Iterable

import tantivy

WORD = re.compile(r"[^\W_]+")
WRITER_HEAP = 15_000_000  # tantivy's minimum indexing arena per writer thread
# A whole-word match counts this many times a trigram's: the grams are there to rescue typos and
# fragments, not to let "unisex" (#un, uni) compete with "united" in a shard where grams are rare.
WORD_BOOST = 3.0


def words(text: str) -> list[str]:
    return WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def analyze(text: str) -> list[str]:
    """Index terms of ``text``: its words, then their boundary-marked character trigrams."""
    ws = words(text)
    grams = []
    for w in ws:
        padded = f"#{w}#"
        grams += [padded[i : i + 3] for i in range(len(padded) - 2)]
    return ws + grams


def _schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("id", stored=True, tokenizer_name="raw")
    # Terms are analysed here (analyze) and joined by spaces; tantivy only splits on them.
    sb.add_text_field("terms", stored=False, tokenizer_name="whitespace", index_option="freq")
    return sb.build()


class LexicalIndex:
    """BM25 over record texts, keyed by record id; one writer (the collection's apply path)."""

    def __init__(self) -> None:
        self.schema = _schema()
        self.index = tantivy.Index(self.schema)  # in memory: rebuilt at start-up (see module)
        self._writer = self.index.writer(heap_size=WRITER_HEAP, num_threads=1)
        self._lock = threading.Lock()
        self._ids: set[str] = set()  # ids with a document (deletes of others are no-ops)

    def apply(self, ops: Iterable[tuple[str, str, str]]) -> None:
        """Apply ``("put", id, text)`` / ``("del", id, "")`` in order and make them searchable.

        A put replaces the id's document; an empty text removes it.
        """
        with self._lock:
            changed = False
            for op, rid, text in ops:
                if rid in self._ids:
                    self._writer.delete_documents_by_term("id", rid)
                    self._ids.discard(rid)
                    changed = True
                if op == "put" and text:
                    self._writer.add_document(
                        tantivy.Document(id=rid, terms=" ".join(analyze(text)))
                    )
                    self._ids.add(rid)
                    changed = True
            # A commit costs ~3 ms, and ~100 ms while tantivy merges segments: none at all for
            # writes that leave the index as it was (records without text, unknown deletes).
            if changed:
                self._writer.commit()
                self.index.reload()

    def search(self, text: str, limit: int) -> list[tuple[float, str]]:
        """Best ``limit`` (BM25 score, id) for ``text``, best first; [] if no term matches."""
        terms = analyze(text)
        if not terms or limit < 1:
            return []
        whole = set(words(text))
        clauses = []
        for t in dict.fromkeys(terms):
            q = tantivy.Query.term_query(self.schema, "terms", t)
            if t in whole:
                q = tantivy.Query.boost_query(q, WORD_BOOST)
            clauses.append((tantivy.Occur.Should, q))
        query = tantivy.Query.boolean_query(clauses)
        searcher = self.index.searcher()
        found = searcher.search(query, limit).hits
        return [(score, searcher.doc(addr)["id"][0]) for score, addr in found]

    def count(self) -> int:
        return self.index.searcher().num_docs


def search_filtered(
    index: LexicalIndex,
    text: str,
    k: int,
    label_of: Callable[[str], int | None],
    total: int,
    filtered: bool = True,
) -> list[tuple[float, str, int]]:
    """Top ``k`` hits ``(score, id, label)`` of ``text`` whose id ``label_of`` maps to a label
    (it answers None for ids the filter or a delete excludes).

    Asks tantivy for ``k`` (``filtered``: a few times ``k``) and, while too few pass, for four
    times more (up to ``total`` documents, everything the index holds). Deletes leave the
    tantivy index with the write, so without a filter the first ``k`` nearly always pass.
    """
    limit = max(4 * k, 64) if filtered else k
    while True:
        hits = index.search(text, limit)
        kept = []
        for score, rid in hits:
            label = label_of(rid)
            if label is not None:
                kept.append((score, rid, label))
        if len(kept) >= k or len(hits) < limit or limit >= total:
            return kept[:k]
        limit = min(total, limit * 4)
