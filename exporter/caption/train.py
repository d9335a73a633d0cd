"""Training of the captioner from the cached backbone features (minutes on 2 CPU cores).

1. A word-level vocabulary from the training titles (``tokenizers`` WordLevel; words seen fewer
   than ``min_word_count`` times map to ``[UNK]``, which decoding never emits).
2. One model trained end to end: attribute heads (cross-entropy per attribute) and the decoder
   (teacher-forced next-word cross-entropy with label smoothing) reading the memory the heads
   condition. Train/val/test split as the towers; validation metrics at the end.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from exporter.caption.model import CaptionModel
from exporter.features import FeatureCache
from exporter.rerank.labels import IGNORE, Vocab
from exporter.rerank.train import attribute_loss, cosine_lr, image_inputs
from exporter.split import Split
from exporter.train import seed_everything
from vitrine.captioning import BOS, EOS, PAD, SPECIAL_TOKENS
from vitrine.catalog import Catalog
from vitrine.progress import progress_bar

CAPTION_ATTRIBUTES = (
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "usage",
)


@dataclass
class CaptionConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 5e-4
    d: int = 128
    layers: int = 2
    heads: int = 4
    ff: int = 512
    max_len: int = 24  # tokens including [BOS] and [EOS]
    min_word_count: int = 2
    label_smoothing: float = 0.1
    attr_weight: float = 1.0
    beam: int = 1  # the default beam width the exported model ships with (1 = greedy)
    seed: int = 0
    max_steps: int | None = None  # cap on training steps (tests)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CaptionResult:
    model: CaptionModel
    tokenizer: Tokenizer
    vocab: Vocab  # attribute classes
    metrics: dict
    config: CaptionConfig


def build_tokenizer(titles: list[str], min_count: int) -> Tokenizer:
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(
        min_frequency=min_count, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tok.train_from_iterator(titles, trainer)
    return tok


def title_tokens(tok: Tokenizer, titles: list[str], max_len: int) -> np.ndarray:
    """[BOS] words [EOS], right-padded/truncated to ``max_len``: int64 (N, max_len)."""
    out = np.full((len(titles), max_len), PAD, dtype=np.int64)
    for i, enc in enumerate(tok.encode_batch(titles)):
        ids = [BOS, *enc.ids[: max_len - 2], EOS]
        out[i, : len(ids)] = ids
    return out


def caption_loss(model, fmap, pooled, tokens, labels, cfg: CaptionConfig):
    memory, logits = model.encode(fmap, pooled)
    lengths = (tokens != PAD).sum(1)
    out = model.decode(memory, tokens[:, :-1], lengths - 1)
    word = F.cross_entropy(
        out.reshape(-1, out.shape[-1]),
        tokens[:, 1:].reshape(-1),
        ignore_index=PAD,
        label_smoothing=cfg.label_smoothing,
    )
    return word, attribute_loss(logits, labels)


def train_captioner(
    catalog: Catalog,
    feats: FeatureCache,
    split: Split,
    cfg: CaptionConfig | None = None,
    quiet: bool = False,
) -> CaptionResult:
    cfg = cfg or CaptionConfig()
    seed_everything(cfg.seed)
    products = catalog.products
    tr, va = np.asarray(split.train), np.asarray(split.val)
    tok = build_tokenizer([products[r].title for r in tr], cfg.min_word_count)
    vocab = Vocab.build([products[r] for r in tr], 1, CAPTION_ATTRIBUTES)
    labels = vocab.image_labels(products)
    tokens = title_tokens(tok, [p.title for p in products], cfg.max_len)
    pooled, _ = image_inputs(feats, np.arange(len(products)))
    model = CaptionModel(
        feats.image_maps.shape[1],
        pooled.shape[1],
        tok.get_vocab_size(),
        vocab.sizes(),
        d=cfg.d,
        layers=cfg.layers,
        heads=cfg.heads,
        ff=cfg.ff,
        max_len=cfg.max_len,
    )
    model.mean.copy_(torch.from_numpy(pooled[tr].mean(0)))
    model.inv_std.copy_(torch.from_numpy(1.0 / (pooled[tr].std(0) + 1e-4)))

    def batch(rows):
        rows = np.sort(rows)  # memory-mapped cache: read in file order
        toks = tokens[rows]
        toks = toks[:, : int((toks != PAD).sum(1).max())]  # pad to the batch's longest title
        return (
            torch.from_numpy(feats.image_maps[rows].astype(np.float32)),
            torch.from_numpy(pooled[rows]),
            torch.from_numpy(toks),
            {a: torch.from_numpy(y[rows]) for a, y in labels.items()},
        )

    per_epoch = math.ceil(len(tr) / cfg.batch_size)
    total = cfg.epochs * per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = cosine_lr(opt, total, warmup=100)
    rng = np.random.default_rng(cfg.seed)
    step = 0
    with progress_bar(disable=quiet) as prog:
        task = prog.add_task("caption: train", total=total, info="")
        while step < total:
            model.train()
            order = rng.permutation(tr)
            for s in range(0, len(order), cfg.batch_size):
                if step >= total:
                    break
                fmap, pool, toks, ys = batch(order[s : s + cfg.batch_size])
                word, attr = caption_loss(model, fmap, pool, toks, ys, cfg)
                loss = word + cfg.attr_weight * attr
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                step += 1
                prog.update(
                    task, advance=1, info=f"words {word.item():.3f} attrs {attr.item():.3f}"
                )
    model.eval()
    metrics = validation_metrics(model, batch, va, labels)
    return CaptionResult(model, tok, vocab, metrics, cfg)


def type_hierarchy(products) -> dict[str, dict[str, str]]:
    """articleType → its most common subCategory and masterCategory in the training products."""
    counts: dict[str, Counter] = {}
    for p in products:
        a = p.attributes
        if a.get("articleType"):
            counts.setdefault(a["articleType"], Counter())[
                (a.get("subCategory", ""), a.get("masterCategory", ""))
            ] += 1
    out = {}
    for t, c in counts.items():
        sub, master = c.most_common(1)[0][0]
        out[t] = {k: v for k, v in (("subCategory", sub), ("masterCategory", master)) if v}
    return out


def validation_metrics(model: CaptionModel, batch, rows: np.ndarray, labels) -> dict:
    words, correct, counted = [], {a: 0 for a in labels}, {a: 0 for a in labels}
    with torch.no_grad():
        for s in range(0, len(rows), 256):
            fmap, pool, toks, ys = batch(rows[s : s + 256])
            memory, logits = model.encode(fmap, pool)
            lengths = (toks != PAD).sum(1)
            out = model.decode(memory, toks[:, :-1], lengths - 1)
            words.append(
                F.cross_entropy(
                    out.reshape(-1, out.shape[-1]), toks[:, 1:].reshape(-1), ignore_index=PAD
                )
            )
            for a, y in ys.items():
                ok = y != IGNORE
                correct[a] += int((logits[a].argmax(1)[ok] == y[ok]).sum())
                counted[a] += int(ok.sum())
    return {
        "validation_word_loss": round(float(torch.stack(words).mean()), 4),
        "validation_attribute_accuracy": {
            a: round(correct[a] / max(counted[a], 1), 4) for a in labels
        },
    }
