"""Caption decoding, shared by the encoder service and offline evaluation.

A caption model (``modality: caption`` in the model repository) is two ONNX graphs: the image
encoder (pixels → ``memory`` tokens + ``attributes`` probabilities), run once per photo, and the
decoder step (memory rows, token prefixes, prefix lengths → log-probabilities of the next word),
run once per generated word for every live hypothesis. This module holds what happens between
decoder steps — greedy and beam search, the length limit, no repeated n-grams, and the mask that
keeps the attribute words of a title consistent with the predicted attributes — so the service
(which batches the steps of many requests together) and ``vitrine eval-captions`` decode
identically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitrine.serving.errors import InvalidArgument

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ("[PAD]", "[BOS]", "[EOS]", "[UNK]")
CONSISTENT_ATTRIBUTES = ("gender", "baseColour", "articleType")  # their words in a title agree
NEG = -1e9


@dataclass(frozen=True)
class DecodeOptions:
    beam: int = 1  # 1 = greedy
    max_tokens: int = 20  # words after [BOS], [EOS] included
    no_repeat_ngram: int = 2  # 0 = allow repeats; n = no n-gram twice in one title
    length_penalty: float = 0.6  # beam: score / length**penalty

    def validate(self, max_beam: int, max_tokens: int) -> None:
        if not 1 <= self.beam <= max_beam:
            raise InvalidArgument(f"beam: {self.beam}, must be in 1..{max_beam}")
        if not 1 <= self.max_tokens <= max_tokens:
            raise InvalidArgument(f"max_tokens: {self.max_tokens}, must be in 1..{max_tokens}")
        if self.no_repeat_ngram < 0:
            raise InvalidArgument("no_repeat_ngram: must be >= 0")


@dataclass
class Attributes:
    """Predicted attribute values of one photo: name → (value, confidence), best non-UNK class."""

    values: dict[str, tuple[str, float]]


def read_attributes(probs: np.ndarray, layout: dict[str, Any]) -> Attributes:
    """One photo's ``attributes`` output row → the most probable known value per attribute."""
    out = {}
    for name, (start, end) in layout["spans"].items():
        classes = layout["classes"][name]
        p = probs[start:end]
        order = np.argsort(-p, kind="stable")
        best = next((int(i) for i in order if classes[i] != "<unk>"), int(order[0]))
        out[name] = (classes[best], float(p[best]))
    return Attributes(out)


def _stem(word: str) -> str:
    """Singular and plural as one word for type names ("Wallet", "Wallets")."""
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def _probability(probs: np.ndarray, layout: dict[str, Any], name: str, value: str) -> float:
    start, _ = layout["spans"][name]
    return float(probs[start + layout["classes"][name].index(value)])


def reconcile(title: str, attrs: Attributes, probs: np.ndarray, layout: dict) -> Attributes:
    """Make the article type and its categories agree with the title and with each other.

    Gender and colour agree by construction (:class:`ConsistencyMask`). The article type is
    settled after decoding: when the title names a known type ("... Maroon Trunks") that is not
    the head's first choice, the title's wins (the decoder read the regions too); then
    subCategory and masterCategory follow the type through the catalog's hierarchy
    (``layout["hierarchy"]``: type → its categories), each with its head probability.
    """
    hierarchy = layout.get("hierarchy", {})
    if "articleType" not in attrs.values:
        return attrs
    values = dict(attrs.values)
    words = [_stem(w) for w in title.lower().split()]
    named = None
    for v in layout["classes"]["articleType"]:
        w = [_stem(x) for x in v.lower().split()]
        said = any(words[i : i + len(w)] == w for i in range(len(words) - len(w) + 1))
        # the longest name the title contains ("Sports Shoes" over "Shoes")
        if v != "<unk>" and said and (named is None or len(v) > len(named)):
            named = v
    if named is not None and named != values["articleType"][0]:
        values["articleType"] = (named, _probability(probs, layout, "articleType", named))
    for name, value in hierarchy.get(values["articleType"][0], {}).items():
        if name in values and values[name][0] != value and value in layout["classes"][name]:
            values[name] = (value, _probability(probs, layout, name, value))
    return Attributes(values)


class ConsistencyMask:
    """Which words a title may not contain, given the predicted attributes.

    For gender, colour and article type, a word that belongs to some value of the attribute but
    not to the predicted one is banned ("Women" when the photo is predicted Men; "Red" when it is
    Navy Blue; "Trunks" or "Trunk" when it is Wallets: type words match singular and plural).
    Type names share words with other attributes ("Casual Shoes" and the usage "Casual"): such
    words are left to those attributes.
    """

    def __init__(self, vocab: Sequence[str], classes: dict[str, list[str]]):
        self.size = len(vocab)
        lower = [w.lower() for w in vocab]
        self.words: dict[str, dict[str, np.ndarray]] = {}
        for a in CONSISTENT_ATTRIBUTES:
            if a not in classes:
                continue
            norm = _stem if a == "articleType" else (lambda w: w)
            shared: set[str] = set()
            if a == "articleType":
                for other, values in classes.items():
                    if other != a:
                        shared |= {norm(w) for v in values for w in v.lower().split()}
            per_value = {}
            for v in classes[a]:
                ws = {norm(w) for w in v.lower().split()} - shared
                per_value[v] = np.asarray([norm(w) in ws for w in lower], dtype=bool)
            self.words[a] = per_value

    def banned(self, attrs: Attributes) -> np.ndarray:
        out = np.zeros(self.size, dtype=bool)
        for a, per_value in self.words.items():
            if a not in attrs.values:
                continue
            value = attrs.values[a][0]
            allowed = per_value.get(value, np.zeros(self.size, dtype=bool))
            for v, words in per_value.items():
                if v != value:
                    out |= words & ~allowed
        out[[PAD, BOS, UNK]] = True
        return out


@dataclass
class Hypothesis:
    tokens: list[int]  # after [BOS]
    logprob: float = 0.0
    done: bool = False

    def score(self, penalty: float) -> float:
        return self.logprob / (max(len(self.tokens), 1) ** penalty)


@dataclass
class BeamState:
    """The search over one photo's caption: its live hypotheses advance one word per step."""

    memory_row: int  # the photo's row in the memory batch
    options: DecodeOptions
    banned: np.ndarray  # bool [V]
    live: list[Hypothesis] = field(default_factory=lambda: [Hypothesis([])])
    finished: list[Hypothesis] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.live

    def prefixes(self) -> list[list[int]]:
        return [[BOS, *h.tokens] for h in self.live]

    def _blocked(self, tokens: list[int]) -> list[int]:
        n = self.options.no_repeat_ngram
        if n <= 0 or len(tokens) < n - 1:
            return []
        if n == 1:
            return list(tokens)
        tail = tuple(tokens[len(tokens) - n + 1 :])
        return [
            tokens[i + n - 1]
            for i in range(len(tokens) - n + 1)
            if tuple(tokens[i : i + n - 1]) == tail
        ]

    def advance(self, logprobs: np.ndarray) -> None:
        """``logprobs`` [len(live), V]: the next-word distribution of each live hypothesis."""
        opts = self.options
        lp = np.where(self.banned[None, :], NEG, logprobs.astype(np.float64))
        cands: list[tuple[float, int, int]] = []
        for i, h in enumerate(self.live):
            row = lp[i]
            blocked = self._blocked(h.tokens)
            if blocked:
                row = row.copy()
                row[blocked] = NEG
            if len(h.tokens) + 1 >= opts.max_tokens:  # the last slot can only end the title
                row = np.full_like(row, NEG)
                row[EOS] = logprobs[i, EOS]
            k = min(opts.beam, row.size - 1)
            for t in np.argpartition(-row, k)[: k + 1]:
                if row[t] > NEG / 2:  # never extend with a banned word
                    cands.append((h.logprob + float(row[t]), i, int(t)))
        cands.sort(key=lambda c: -c[0])
        new_live = []
        for total, i, t in cands:
            h = self.live[i]
            if t == EOS:
                self.finished.append(Hypothesis(h.tokens, total, True))
            else:
                new_live.append(Hypothesis([*h.tokens, t], total))
            if len(new_live) == opts.beam or len(self.finished) >= opts.beam:
                break
        self.live = new_live if len(self.finished) < opts.beam else []
        if self.live and self.finished and opts.beam > 1:
            # Stop when no live hypothesis can still beat the best finished one.
            best = max(f.score(opts.length_penalty) for f in self.finished)
            if all(h.logprob / (opts.max_tokens**opts.length_penalty) < best for h in self.live):
                self.live = []

    def best(self) -> Hypothesis:
        pool = self.finished or self.live
        return max(pool, key=lambda h: h.score(self.options.length_penalty))


def pad_prefixes(prefixes: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded token matrix [R, T] and lengths [R] (int64) for the decoder step."""
    t = max(len(p) for p in prefixes)
    tokens = np.full((len(prefixes), t), PAD, dtype=np.int64)
    for i, p in enumerate(prefixes):
        tokens[i, : len(p)] = p
    return tokens, np.asarray([len(p) for p in prefixes], dtype=np.int64)


StepFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def decode(step: StepFn, memory: np.ndarray, states: list[BeamState]) -> list[Hypothesis]:
    """Run the searches of ``states`` to the end, all live hypotheses in one step each time.

    ``step(memory_rows, tokens, lengths)`` → log-probabilities [R, V].
    """
    while True:
        live = [s for s in states if not s.done]
        if not live:
            return [s.best() for s in states]
        rows, prefixes = [], []
        for s in live:
            for p in s.prefixes():
                rows.append(s.memory_row)
                prefixes.append(p)
        tokens, lengths = pad_prefixes(prefixes)
        logprobs = step(memory[np.asarray(rows)], tokens, lengths)
        start = 0
        for s in live:
            n = len(s.live)
            s.advance(logprobs[start : start + n])
            start += n


def vocabulary(tokenizer_json: str | Path) -> list[str]:
    """A caption model's words by id, from its ``tokenizer.json``."""
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tokenizer_json)).get_vocab()
    words = [""] * len(vocab)
    for w, i in vocab.items():
        words[i] = w
    return words


def detokenize(tokens: Sequence[int], vocab: Sequence[str]) -> str:
    return " ".join(vocab[t] for t in tokens if t not in (PAD, BOS, EOS))
