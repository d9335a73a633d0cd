"""Training of the combiner from precomputed embeddings (1-2 minutes on 2 CPU cores).

Each step draws a batch of training triplets (balanced over the changed attributes by
``attribute_weights``), a random phrasing of each modifier, and scores the combiner's queries
against **every** photo of the training split (InfoNCE over the whole gallery, temperature
``temperature``): the other photos — the reference itself and the products of its type in
the old colour included — are the negatives. The positives are the triplet's targets,
weighted: a share ``uniform_share[attribute]`` spread evenly over all targets (any target
answers the query: success), the rest by ``softmax(cos(reference, target) /
positive_temperature)`` (targets that look like the reference first: style kept). Colour
changes spread it all evenly; gender, usage and season changes mostly follow the look (a
"for women" query should keep the colour and cut). A cosine term (``phrase_weight``) pulls the
query towards the text tower's embedding of the target written out ("Women Red Sweaters"), a
teacher that is only available in training. After every epoch the model is scored on the
validation split's composed queries (mean success@10 over the four attributes, validation
gallery) and the best epoch is kept. docs/quality.md ("Composed queries") has what each
choice bought.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from exporter.compose.metrics import K, composed_metrics
from exporter.compose.model import Combiner
from exporter.compose.phrases import CHANGES, modifier_phrases
from exporter.compose.triplets import Triplets, query_phrases
from exporter.train import seed_everything
from vitrine.progress import progress_bar


@dataclass
class ComposeConfig:
    proj: int = 512
    hidden: int = 1024
    dropout: float = 0.1
    epochs: int = 8
    samples_per_epoch: int = 32768  # triplets drawn per epoch
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    temperature: float = 0.05  # InfoNCE over the gallery
    positive_temperature: float = 0.05  # target weights by similarity to the reference
    # Per changed attribute: the share of the target distribution spread evenly over all
    # targets (the rest goes to the targets that look like the reference).
    uniform_share: dict[str, float] = field(
        default_factory=lambda: {"baseColour": 1.0, "gender": 0.1, "usage": 0.2, "season": 0.3}
    )
    # Weight of a second InfoNCE over the hard negatives only: the gallery's products of the
    # targets' articleType and gender (other colours, usages, seasons). Off: no gain measured.
    hard_weight: float = 0.0
    image_noise: float = 0.0  # std of Gaussian noise on the reference embedding (off: no gain)
    # Weight of a cosine loss pulling the query towards the text tower's embedding of the target
    # written out ("Women Red Sweaters"): a teacher that knows the type the photo shows.
    phrase_weight: float = 1.0
    # Sampling weight of each changed attribute (colour changes are 7x as many as the rest).
    attribute_weights: dict[str, float] = field(
        default_factory=lambda: {"baseColour": 0.4, "gender": 0.2, "usage": 0.2, "season": 0.2}
    )
    seed: int = 0
    max_steps: int | None = None  # stop early (tests)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ComposeResult:
    model: Combiner
    metrics: dict  # validation: the combiner at its best epoch, and the baselines
    history: list[dict]
    config: ComposeConfig


class PhraseTable:
    """Every phrasing of every (attribute, value) of a set of triplets, and their embeddings."""

    def __init__(self, keys: list[tuple[str, str]], embed):
        self.keys = list(keys)
        self.start = np.zeros(len(keys), dtype=np.int64)
        self.count = np.zeros(len(keys), dtype=np.int64)
        self.texts: list[str] = []
        for i, k in enumerate(self.keys):
            options = modifier_phrases(*k)
            self.start[i], self.count[i] = len(self.texts), len(options)
            self.texts += options
        self.index = {t: i for i, t in enumerate(self.texts)}
        self.vectors = np.asarray(embed(self.texts), dtype=np.float32)

    def sample(self, key: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random phrasing (row of ``vectors``) per key."""
        return self.start[key] + (rng.random(len(key)) * self.count[key]).astype(np.int64)


def remap_keys(triplets: Triplets, keys: list[tuple[str, str]]) -> np.ndarray:
    """``triplets.key`` as indices into ``keys``."""
    pos = {k: i for i, k in enumerate(keys)}
    return np.asarray([pos[triplets.keys[k]] for k in triplets.key], dtype=np.int64)


def target_weights(triplets: Triplets, gallery: np.ndarray, cfg: ComposeConfig) -> list:
    """Per triplet: the weight of each target in the loss (sums to 1)."""
    out = []
    for r, t, a in zip(triplets.ref, triplets.targets, triplets.attributes, strict=True):
        share = cfg.uniform_share.get(a, 1.0)
        sim = gallery[t] @ gallery[r]
        w = np.exp((sim - sim.max()) / cfg.positive_temperature)
        w = (1 - share) * w / w.sum() + share / len(t)
        out.append(w.astype(np.float32))
    return out


def sampling_probabilities(triplets: Triplets, cfg: ComposeConfig) -> np.ndarray:
    attrs = triplets.attributes
    p = np.zeros(len(triplets))
    for a in CHANGES:
        m = attrs == a
        if m.any():
            p[m] = cfg.attribute_weights.get(a, 0.0) / m.sum()
    if p.sum() <= 0:
        raise ValueError("no training triplets with a positive attribute weight")
    return p / p.sum()


def compose_queries(
    model: Combiner, image: np.ndarray, text: np.ndarray, batch: int = 4096
) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(image), batch):
            out.append(
                model(
                    torch.from_numpy(image[s : s + batch]), torch.from_numpy(text[s : s + batch])
                ).numpy()
            )
    return np.concatenate(out) if out else np.zeros((0, image.shape[1]), np.float32)


def weighted_sum(image: np.ndarray, text: np.ndarray, text_weight: float = 0.5) -> np.ndarray:
    """Today's composite query: the renormalised weighted sum of the two unit vectors."""
    q = text_weight * text + (1 - text_weight) * image
    return q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)


def train_combiner(
    image: np.ndarray,
    phrase_embed,
    train: Triplets,
    val: Triplets | None,
    cfg: ComposeConfig | None = None,
    quiet: bool = False,
) -> ComposeResult:
    """Train on ``train`` (targets over ``train.rows``), select the epoch on ``val``.

    ``image``: float32 [catalog rows, dim] photo embeddings (the image tower's, unit);
    ``phrase_embed``: texts → float32 [texts, dim] (the text tower's, unit).
    """
    cfg = cfg or ComposeConfig()
    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dim = image.shape[1]
    keys = sorted(set(train.keys) | set(val.keys if val is not None else []))
    phrases = PhraseTable(keys, phrase_embed)
    gallery = image[train.rows].astype(np.float32)
    G = torch.from_numpy(gallery)
    P = torch.from_numpy(phrases.vectors)
    tkey = remap_keys(train, keys)
    weights = target_weights(train, gallery, cfg)
    probs = sampling_probabilities(train, cfg)
    G_group = torch.from_numpy(train.group)
    if cfg.phrase_weight > 0:
        known = sorted(set(train.written))
        pos = {w: i for i, w in enumerate(known)}
        teacher = torch.from_numpy(np.asarray(phrase_embed(known), dtype=np.float32))
        teacher = teacher[[pos[w] for w in train.written]]
    t_group = torch.from_numpy(np.asarray([train.group[t[0]] for t in train.targets]))
    model = Combiner(dim, cfg.proj, cfg.hidden, cfg.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = max(1, cfg.samples_per_epoch // cfg.batch_size)
    total = cfg.epochs * per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / cfg.warmup_steps)
            * 0.5
            * (1 + math.cos(math.pi * min(1.0, s / max(total, 1))))
        ),
    )
    has_val = val is not None and len(val) > 0
    if has_val:
        v_gallery = image[val.rows].astype(np.float32)
        v_pos = {t: i for i, t in enumerate(phrases.texts)}
        v_text = phrases.vectors[[v_pos[t] for t in query_phrases(val, cfg.seed)]]
        v_image = v_gallery[val.ref]

    def validate() -> dict:
        q = compose_queries(model, v_image, v_text)
        return composed_metrics(q, v_gallery, val)

    best, best_score, history, step = None, -1.0, [], 0
    with progress_bar(disable=quiet) as prog:
        task = prog.add_task("compose: train", total=total, info="")
        while step < total:
            model.train()
            draw = rng.choice(len(train), size=per_epoch * cfg.batch_size, p=probs)
            ep_loss, n = 0.0, 0
            for b in range(per_epoch):
                if step >= total:
                    break
                idx = draw[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                rows = np.repeat(np.arange(len(idx)), [len(train.targets[i]) for i in idx])
                cols = np.concatenate([train.targets[i] for i in idx])
                target = torch.zeros(len(idx), len(gallery))
                target[rows, cols] = torch.from_numpy(np.concatenate([weights[i] for i in idx]))
                phrase = phrases.sample(tkey[idx], rng)
                ref = G[train.ref[idx]]
                if cfg.image_noise > 0:
                    ref = F.normalize(ref + cfg.image_noise * torch.randn_like(ref), dim=-1)
                q = model(ref, P[phrase])
                logits = q @ G.T / cfg.temperature
                loss = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
                if cfg.hard_weight > 0:
                    hard = G_group[None, :] == t_group[idx][:, None]
                    hard_logits = logits.masked_fill(~hard, float("-inf"))
                    hard_lp = F.log_softmax(hard_logits, dim=1).masked_fill(~hard, 0.0)
                    loss = loss - cfg.hard_weight * (target * hard_lp).sum(1).mean()
                if cfg.phrase_weight > 0:
                    cos = (q * teacher[idx]).sum(1)
                    loss = loss + cfg.phrase_weight * (1 - cos).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                ep_loss += float(loss.detach())
                n += 1
                prog.update(task, advance=1, info=f"loss {float(loss.detach()):.3f}")
            rec = {"step": step, "loss": round(ep_loss / max(n, 1), 4)}
            if has_val:
                m = validate()
                rec["validation"] = m
                score = m["mean"][f"success@{K}"]
                if score > best_score:
                    best_score, best = score, copy.deepcopy(model.state_dict())
                prog.update(task, info=f"loss {rec['loss']:.3f} val success@{K} {score:.3f}")
            history.append(rec)
    if best is not None:
        model.load_state_dict(best)
    model.eval()
    metrics: dict = {}
    if has_val:
        metrics = {
            "composer": validate(),
            "photo_only": composed_metrics(v_image, v_gallery, val),
            "weighted_sum_0.5": composed_metrics(weighted_sum(v_image, v_text), v_gallery, val),
            "triplets": {"train": train.counts(), "validation": val.counts()},
        }
    return ComposeResult(model, metrics, history, cfg)
