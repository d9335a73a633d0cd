"""Training of the reranker from the cached backbone features (minutes on 2 CPU cores).

1. Vocabularies from the training split (attributes, wordpieces, tagger words).
2. Image heads (attributes + tagger) on the training photos' cached trunk outputs.
3. Text heads on query-like texts made from the training products (titles, attribute phrases,
   with and without brand/colour/gender).
4. The memory: one entry per distinct training title (its lexical vector, the mean visual
   descriptor of its photos).
5. The combination weights, per direction, fitted on the **validation** split: for each
   validation title (and photo) the trained towers' top ``candidates`` form a list, and a
   listwise softmax loss puts the right product (or its same-title twins) first. Fitting these
   few weights on products the heads and towers never saw keeps them honest: the heads are
   over-confident on their own training photos.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from exporter.features import FeatureCache
from exporter.rerank.image_heads import ImageHeads, pooled_features
from exporter.rerank.labels import ATTRIBUTES, IGNORE, Vocab, query_texts
from exporter.rerank.model import DIRECTIONS, FEATURES, RerankModel
from exporter.rerank.text_heads import TextHeads, WordpieceVocab
from exporter.split import Split
from exporter.towers import TrainableTowers
from exporter.train import CachedData, embed_cached, seed_everything
from vitrine.catalog import Catalog
from vitrine.preprocess import TextTokenizer, normalize_title
from vitrine.progress import progress_bar

TEXT_MAX_LENGTH = 64


@dataclass
class RerankConfig:
    candidates: int = 50  # shortlist length the weights are fitted on (the serving default)
    image_epochs: int = 30
    text_epochs: int = 8
    hidden: int = 1024
    visual_dim: int = 128
    lex_dim: int = 256
    knn: int = 5
    knn_temperature: float = 0.05
    min_count: int = 3  # attribute values (brands) rarer than this in training fold into UNK
    tag_min_titles: int = 5  # the tagger predicts wordpieces of at least this many titles
    tag_weight: float = 0.05  # weight of the tagger's summed BCE against the attribute CEs
    fit_epochs: int = 300
    seed: int = 0
    max_steps: int | None = None  # cap on steps per training loop (tests)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RerankResult:
    model: RerankModel
    image_heads: ImageHeads
    vocab: Vocab
    metrics: dict
    config: RerankConfig


def image_inputs(feats: FeatureCache, rows, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """[mean, max, mid, colour] features and the mid-level descriptors of ``rows``."""
    rows = np.asarray(rows)
    xs = []
    for s in range(0, len(rows), batch):
        r = rows[s : s + batch]
        fmap = torch.from_numpy(feats.image_maps[r].astype(np.float32))
        mid = torch.from_numpy(feats.image_mid[r].astype(np.float32))
        colour = torch.from_numpy(feats.image_colour[r].astype(np.float32))
        xs.append(pooled_features(fmap, mid, colour).numpy())
    return np.concatenate(xs), feats.image_mid[rows].astype(np.float32)


def _batches(n: int, size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    return [order[s : s + size] for s in range(0, n, size)]


def _labels_tensor(labels: dict[str, np.ndarray], idx) -> dict[str, torch.Tensor]:
    return {a: torch.from_numpy(labels[a][idx]) for a in ATTRIBUTES}


def attribute_loss(
    logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy over the attributes of ``labels`` that have a label in the batch."""
    losses = [
        F.cross_entropy(logits[a], y, ignore_index=IGNORE, label_smoothing=label_smoothing)
        for a, y in labels.items()
        if (y != IGNORE).any()
    ]
    return torch.stack(losses).mean()


def _steps(epochs: int, per_epoch: int, cfg: RerankConfig) -> int:
    total = epochs * per_epoch
    return min(total, cfg.max_steps) if cfg.max_steps is not None else total


def cosine_lr(opt, total: int, warmup: int = 50):
    """Linear warm-up over ``warmup`` steps times a cosine decay over all ``total`` steps."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(total, 1))))
        ),
    )


def train_image_heads(
    x: np.ndarray,
    mid: np.ndarray,
    labels: dict[str, np.ndarray],
    tags: np.ndarray,
    heads: ImageHeads,
    cfg: RerankConfig,
    prog,
) -> ImageHeads:
    heads.fit_normalisation(x, mid)
    X, Y = torch.from_numpy(x), torch.from_numpy(tags)
    opt = torch.optim.AdamW(heads.parameters(), lr=1e-3, weight_decay=0.05)
    rng = np.random.default_rng(cfg.seed)
    per_epoch = math.ceil(len(X) / 128)
    total = _steps(cfg.image_epochs, per_epoch, cfg)
    sched = cosine_lr(opt, total)
    task = prog.add_task("rerank: image heads", total=total, info="")
    step = 0
    while step < total:
        heads.train()
        for idx in _batches(len(X), 128, rng):
            if step >= total:
                break
            attrs, tag_logits = heads.logits(X[idx])
            bce = F.binary_cross_entropy_with_logits(tag_logits, Y[idx], reduction="sum")
            y = _labels_tensor(labels, idx)
            loss = attribute_loss(attrs, y, 0.1) + cfg.tag_weight * bce / len(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            prog.update(task, advance=1, info=f"loss {float(loss.detach()):.3f}")
    return heads.eval()


def train_text_heads(
    ids: np.ndarray,
    mask: np.ndarray,
    labels: dict[str, np.ndarray],
    heads: TextHeads,
    cfg: RerankConfig,
    prog,
) -> TextHeads:
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
    opt = torch.optim.AdamW(heads.parameters(), lr=2e-3, weight_decay=0.01)
    rng = np.random.default_rng(cfg.seed + 1)
    per_epoch = math.ceil(len(ids_t) / 256)
    total = _steps(cfg.text_epochs, per_epoch, cfg)
    sched = cosine_lr(opt, total)
    task = prog.add_task("rerank: text heads", total=total, info="")
    step = 0
    while step < total:
        heads.train()
        for idx in _batches(len(ids_t), 256, rng):
            if step >= total:
                break
            said = heads.attributes(ids_t[idx], mask_t[idx])
            y = _labels_tensor(labels, idx)
            losses = [
                F.nll_loss(said[a], y[a], ignore_index=IGNORE)
                for a in ATTRIBUTES
                if (y[a] != IGNORE).any()
            ]
            loss = torch.stack(losses).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            prog.update(task, advance=1, info=f"loss {float(loss.detach()):.3f}")
    return heads.eval()


@dataclass
class PairLists:
    """Candidate lists of one direction: features [Q, N, F] and the relevant candidates."""

    features: torch.Tensor
    relevant: torch.Tensor  # bool [Q, N]: the query's own product and its same-title twins
    own: torch.Tensor  # bool [Q, N]: the query's own product (the strict rule)


def candidate_lists(
    model: RerankModel,
    t: np.ndarray,
    v: np.ndarray,
    ids: np.ndarray,
    mask: np.ndarray,
    payloads: np.ndarray,
    title_code: np.ndarray,
    n: int,
) -> dict[str, PairLists]:
    """Both directions' lists over one pool: text i ↔ photo i belong together."""
    s = t @ v.T
    out = {}
    with torch.no_grad():
        for direction, mat in zip(DIRECTIONS, (s, s.T), strict=True):
            top = np.argsort(-mat, axis=1, kind="stable")[:, :n]
            q = np.repeat(np.arange(len(mat)), top.shape[1])
            c = top.reshape(-1)
            text_rows, photo_rows = (q, c) if direction == "text_query" else (c, q)
            feats = []
            for s0 in range(0, len(q), 4096):
                sl = slice(s0, s0 + 4096)
                feats.append(
                    model.features(
                        torch.from_numpy(ids[text_rows[sl]]),
                        torch.from_numpy(mask[text_rows[sl]]),
                        torch.from_numpy(payloads[photo_rows[sl]]),
                        torch.from_numpy(mat[q[sl], c[sl]].astype(np.float32)),
                    )
                )
            f = torch.cat(feats).view(len(mat), top.shape[1], -1)
            rel = torch.from_numpy(title_code[top] == title_code[:, None])
            own = torch.from_numpy(top == np.arange(len(mat))[:, None])
            out[direction] = PairLists(f, rel, own)
    return out


def pool_lists(
    model: RerankModel,
    towers: TrainableTowers,
    feats: FeatureCache,
    catalog: Catalog,
    rows: np.ndarray,
    title_batch,
    payloads: np.ndarray,
    n: int,
) -> dict[str, PairLists]:
    """Both directions' top-``n`` lists over the pool ``rows`` (a split), as the towers rank
    it: ``title_batch`` and ``payloads`` are indexed by catalog row."""
    t, v = embed_cached(towers, CachedData(feats, catalog, rows), "cpu")
    titles = [normalize_title(catalog.products[r].title) for r in rows]
    codes = {c: i for i, c in enumerate(dict.fromkeys(titles))}
    return candidate_lists(
        model,
        t,
        v,
        title_batch.input_ids[rows],
        title_batch.attention_mask[rows],
        payloads[rows],
        np.asarray([codes[c] for c in titles]),
        n,
    )


def fit_weights(model: RerankModel, lists: dict[str, PairLists], cfg: RerankConfig) -> None:
    """Listwise softmax over each list (targets: the relevant candidates), one weight vector
    per direction; a little L2 keeps the feature weights small where they do not help."""
    w = model.weights
    opt = torch.optim.Adam([w], lr=0.05)
    steps = cfg.fit_epochs if cfg.max_steps is None else min(cfg.fit_epochs, cfg.max_steps)
    for _ in range(steps):
        loss = 0.0
        for d, direction in enumerate(DIRECTIONS):
            pl = lists[direction]
            keep = pl.relevant.any(1)
            scores = (pl.features[keep] * w[d]).sum(-1)
            target = pl.relevant[keep].float()
            target = target / target.sum(1, keepdim=True)
            loss = loss - (target * F.log_softmax(scores, dim=1)).sum(1).mean()
        loss = loss + 1e-3 * (w[:, 1:] ** 2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def list_metrics(model: RerankModel, lists: dict[str, PairLists]) -> dict:
    """Strict R@1/R@10 of each direction before (retrieval order) and after reranking."""
    out = {}
    with torch.no_grad():
        for d, direction in enumerate(DIRECTIONS):
            pl = lists[direction]
            for before_after, scores in (
                ("retrieval", pl.features[..., 0]),
                ("reranked", (pl.features * model.weights[d]).sum(-1)),
            ):
                order = torch.argsort(scores, dim=1, descending=True, stable=True)
                hits = torch.gather(pl.own, 1, order)
                out[f"{direction}_{before_after}"] = {
                    "R@1": round(float(hits[:, 0].float().mean()), 4),
                    "R@10": round(float(hits[:, :10].any(1).float().mean()), 4),
                }
    return out


def catalog_memory(
    text_heads: TextHeads, heads: ImageHeads, title_batch, mid: np.ndarray, titles, rows
) -> tuple[torch.Tensor, torch.Tensor]:
    """The kNN memory: one entry per distinct (normalised) training title — its lexical vector
    and the normalised mean visual descriptor of its photos. Same-title twins share one entry,
    so they neither crowd the k nearest nor leave exact ties for top-k to break arbitrarily."""
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(titles):
        groups.setdefault(normalize_title(t), []).append(i)
    first = np.asarray([g[0] for g in groups.values()])
    rows = np.asarray(rows)
    lex = text_heads.lexical(
        torch.from_numpy(title_batch.input_ids[rows[first]]),
        torch.from_numpy(title_batch.attention_mask[rows[first]]),
    )
    vis = heads.visual(torch.from_numpy(mid[rows]))
    vis = torch.stack([vis[g].mean(0) for g in groups.values()])
    return lex, F.normalize(vis, dim=-1)


def train_reranker(
    catalog: Catalog,
    feats: FeatureCache,
    split: Split,
    towers: TrainableTowers,
    tokenizer_json,
    cfg: RerankConfig | None = None,
    quiet: bool = False,
) -> RerankResult:
    cfg = cfg or RerankConfig()
    seed_everything(cfg.seed)
    products = catalog.products
    train_p = [products[r] for r in split.train]
    vocab = Vocab.build(train_p, cfg.min_count)
    tok = TextTokenizer(tokenizer_json, TEXT_MAX_LENGTH)
    specials = {tok.pad_id, *(tok._tok.token_to_id(s) for s in ("[CLS]", "[SEP]", "[UNK]"))}
    texts, text_owner = [], []
    for r in split.train:
        for q in query_texts(products[r]):
            texts.append(q)
            text_owner.append(r)
    text_batch = tok.encode(texts)
    title_batch = tok.encode([p.title for p in products])

    def id_lists(batch, rows):
        return [list(batch.input_ids[i][batch.attention_mask[i] > 0]) for i in rows]

    wp = WordpieceVocab(
        tok._tok.get_vocab_size(),
        specials,
        id_lists(text_batch, range(len(texts))),
        id_lists(title_batch, split.train),
        tag_min_titles=cfg.tag_min_titles,
    )
    with progress_bar(disable=quiet) as prog:
        # -- image heads ------------------------------------------------------------------
        x_all, mid_all = image_inputs(feats, np.arange(len(products)))
        image_labels = vocab.image_labels(products)
        tags = wp.tag_targets(id_lists(title_batch, range(len(products))))
        heads = ImageHeads(
            x_all.shape[1], mid_all.shape[1], vocab.sizes(), wp.n_tags, cfg.visual_dim, cfg.hidden
        )
        tr = np.asarray(split.train)
        train_image_heads(
            x_all[tr],
            mid_all[tr],
            {a: y[tr] for a, y in image_labels.items()},
            tags[tr],
            heads,
            cfg,
            prog,
        )
        # -- text heads -----------------------------------------------------------------------
        text_labels = {a: np.empty(len(texts), np.int64) for a in ATTRIBUTES}
        for i, (t, r) in enumerate(zip(texts, text_owner, strict=True)):
            for a, y in vocab.text_labels(t, products[r]).items():
                text_labels[a][i] = y
        text_heads = TextHeads(wp, vocab.sizes(), lex_dim=cfg.lex_dim, seed=cfg.seed)
        train_text_heads(
            text_batch.input_ids, text_batch.attention_mask, text_labels, text_heads, cfg, prog
        )
        # -- memory and weights ----------------------------------------------------------------
        with torch.no_grad():
            memory_lex, memory_vis = catalog_memory(
                text_heads, heads, title_batch, mid_all, [products[r].title for r in tr], tr
            )
            payloads = heads(torch.from_numpy(x_all), torch.from_numpy(mid_all)).numpy()
        payloads = payloads.astype(np.float16)  # what the index stores
        model = RerankModel(
            text_heads, heads.layout, memory_lex, memory_vis, cfg.knn, cfg.knn_temperature
        )
        task = prog.add_task("rerank: weights", total=1, info="validation lists")
        va = np.asarray(split.val)
        lists = pool_lists(model, towers, feats, catalog, va, title_batch, payloads, cfg.candidates)
        fit_weights(model, lists, cfg)
        prog.update(task, advance=1)
    model.eval()
    metrics = {
        "validation_fit": list_metrics(model, lists),
        "weights": {
            d: dict(
                zip(FEATURES, [round(float(x), 4) for x in model.weights.detach()[i]], strict=True)
            )
            for i, d in enumerate(DIRECTIONS)
        },
        "image_heads_validation_accuracy": _accuracy(heads, x_all[va], image_labels, va),
    }
    return RerankResult(model, heads, vocab, metrics, cfg)


def _accuracy(heads: ImageHeads, x: np.ndarray, labels: dict[str, np.ndarray], rows) -> dict:
    with torch.no_grad():
        logits, _ = heads.logits(torch.from_numpy(x))
    out = {}
    for a in ATTRIBUTES:
        y = labels[a][rows]
        ok = y != IGNORE
        out[a] = round(float((logits[a].argmax(1).numpy()[ok] == y[ok]).mean()), 4)
    return out
