"""Contrastive training of the two towers on cached backbone features.

Recipe (defaults, see docs/quality.md for what each piece buys):
* frozen backbones, cached trunk outputs; trainable MLP heads with attention pooling;
* symmetric InfoNCE with a learnable temperature, multi-positive for products sharing a title;
* attribute-based text augmentation ("Men Navy Blue Shirts") mixed in with the titles;
* AdamW + cosine schedule with warm-up; model selection on the validation split;
* deterministic: seeds for torch/NumPy and a fixed data order per seed.

The linear probe baseline is the same loop with ``head="linear"``, titles only, one positive.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from exporter.features import FeatureCache
from exporter.losses import make_loss
from exporter.metrics import retrieval_metrics
from exporter.split import Split
from exporter.towers import TowerSpec, TrainableTowers
from vitrine.catalog import Catalog
from vitrine.preprocess import normalize_title
from vitrine.progress import progress_bar


@dataclass
class TrainConfig:
    spec: TowerSpec = field(default_factory=TowerSpec)
    loss: str = "infonce"
    epochs: int = 40
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    title_prob: float = 0.7  # chance a training text is the title (else an attribute phrase)
    multi_positive: bool = True  # products sharing a normalised title are all positives
    hard_batches: float = 0.0  # share of each batch drawn from one articleType (hard negatives)
    attr_loss: float = 0.0  # weight of the auxiliary attribute classification loss (0 = off)
    seed: int = 0
    device: str = "cpu"
    max_steps: int | None = None  # stop early (tests)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        return d


def probe_config(base: TrainConfig) -> TrainConfig:
    """The linear-probe baseline: linear heads on mean-pooled frozen features, titles only."""
    spec = TowerSpec(
        dim=base.spec.dim, head="linear", max_length=base.spec.max_length, colour=False, mid=False
    )
    return replace(
        base, spec=spec, loss="infonce", title_prob=1.0, multi_positive=False, hard_batches=0.0
    )


@dataclass
class TrainResult:
    model: TrainableTowers
    val_metrics: dict
    history: list[dict]
    temperature: float
    steps: int


ATTRIBUTE_TARGETS = ("gender", "articleType", "baseColour", "usage", "season")


class AttributeClassifiers(torch.nn.Module):
    """Training-only linear classifiers of catalog attributes on both towers' embeddings.

    An auxiliary cross-entropy that makes the shared space encode what product queries filter
    and describe by (gender, type, colour, usage, season); not exported.
    """

    def __init__(self, dim: int, classes: dict[str, int]):
        super().__init__()
        self.heads = torch.nn.ModuleDict({k: torch.nn.Linear(dim, n) for k, n in classes.items()})

    def forward(self, emb: torch.Tensor, labels: dict[str, torch.Tensor]) -> torch.Tensor:
        losses = [F.cross_entropy(h(emb), labels[k]) for k, h in self.heads.items()]
        return torch.stack(losses).mean()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class CachedData:
    """Index structures over the feature cache for one split part."""

    def __init__(self, feats: FeatureCache, catalog: Catalog, rows: list[int]):
        self.feats = feats
        self.rows = np.asarray(rows, dtype=np.int64)
        types = [catalog.products[r].attributes.get("articleType", "") for r in rows]
        type_codes = {t: i for i, t in enumerate(sorted(set(types)))}
        self.type_code = np.asarray([type_codes[t] for t in types], dtype=np.int64)
        self.attr_codes = {}  # attribute -> (codes per row, number of classes)
        for name in ATTRIBUTE_TARGETS:
            vals = [catalog.products[r].attributes.get(name, "") for r in rows]
            vocab = {v: i for i, v in enumerate(sorted(set(vals)))}
            self.attr_codes[name] = (np.asarray([vocab[v] for v in vals], np.int64), len(vocab))
        titles = [normalize_title(catalog.products[r].title) for r in rows]
        codes = {t: i for i, t in enumerate(dict.fromkeys(titles))}
        self.title_code = np.asarray([codes[t] for t in titles], dtype=np.int64)
        self.title_text = np.full(len(catalog.products), -1, dtype=np.int64)
        self.aug_texts: list[list[int]] = [[] for _ in range(len(catalog.products))]
        for ti, (owner, kind) in enumerate(zip(feats.text_owner, feats.text_kind, strict=True)):
            if kind == 0:
                self.title_text[owner] = ti
            else:
                self.aug_texts[owner].append(ti)

    def text_batch(self, text_idx: np.ndarray, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        mask = self.feats.text_mask[text_idx]
        L = max(int(mask.sum(1).max()), 1)
        states = torch.from_numpy(self.feats.text_states[text_idx, :L].astype(np.float32))
        return states.to(device), torch.from_numpy(mask[:, :L].astype(np.int64)).to(device)

    def image_batch(
        self, rows: np.ndarray, device: str, spec: TowerSpec
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Cached feature maps and the extra descriptors ``spec`` asks for (colour, mid-level)."""
        maps = torch.from_numpy(self.feats.image_maps[rows].astype(np.float32)).to(device)
        extra = [self.feats.image_colour[rows]] if spec.colour else []
        if spec.mid:
            extra.append(self.feats.image_mid[rows].astype(np.float32))
        return maps, torch.from_numpy(np.concatenate(extra, axis=1)).to(device) if extra else None


@torch.no_grad()
def embed_cached(model: TrainableTowers, data: CachedData, device: str, bs: int = 512):
    """Title and image embeddings of ``data.rows`` from cached features (eval mode)."""
    model.eval()
    t_out, v_out = [], []
    for s in range(0, len(data.rows), bs):
        rows = data.rows[s : s + bs]
        t_out.append(
            model.encode_text_states(*data.text_batch(data.title_text[rows], device)).cpu()
        )
        v_out.append(model.encode_image_maps(*data.image_batch(rows, device, model.spec)).cpu())
    return torch.cat(t_out).numpy(), torch.cat(v_out).numpy()


def quick_metrics(model: TrainableTowers, data: CachedData, device: str) -> dict:
    t, v = embed_cached(model, data, device)
    rel = data.title_code[:, None] == data.title_code[None, :]
    strict = np.eye(len(t), dtype=bool)
    s = t @ v.T
    m_strict = retrieval_metrics(s, strict)
    m_title = retrieval_metrics(s, rel)
    m_i2t = retrieval_metrics(s.T, strict)
    return {
        "t2i_strict_R@1": m_strict["R@1"],
        "t2i_strict_R@10": m_strict["R@10"],
        "t2i_title_R@1": m_title["R@1"],
        "i2t_strict_R@10": m_i2t["R@10"],
        "score": m_strict["R@1"] + m_strict["R@10"] + m_i2t["R@1"] + m_i2t["R@10"],
    }


def _epoch_order(data: CachedData, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """A permutation of the training rows, batch by batch.

    With ``hard_batches`` > 0 each full batch starts with a run of ``hard_batches * batch_size``
    products of one article type (in-batch hard negatives: same type, other brand or colour); the
    rest of the batch is random.
    """
    order = rng.permutation(len(data.rows))
    n_batches = len(order) // cfg.batch_size
    n_hard = int(cfg.batch_size * cfg.hard_batches)
    if n_hard <= 0 or n_batches == 0:
        return order
    by_type = order[np.argsort(data.type_code[order], kind="stable")]  # shuffled within a type
    windows = [by_type[b * n_hard : (b + 1) * n_hard] for b in range(n_batches)]
    used = np.zeros(len(order), dtype=bool)
    used[np.concatenate(windows)] = True
    rest = order[~used[order]]
    n_rest = cfg.batch_size - n_hard
    out = [
        np.concatenate([windows[w], rest[i * n_rest : (i + 1) * n_rest]])
        for i, w in enumerate(rng.permutation(n_batches))
    ]
    out.append(rest[n_batches * n_rest :])
    return np.concatenate(out)


def train_towers(
    catalog: Catalog,
    feats: FeatureCache,
    split: Split,
    cfg: TrainConfig,
    quiet: bool = False,
    label: str = "train",
    init: dict | None = None,
) -> TrainResult:
    seed_everything(cfg.seed)
    device = cfg.device
    model = TrainableTowers(cfg.spec)
    if init is not None:  # heads trained on frozen features: only the unfrozen tails start fresh
        try:
            missing, unexpected = model.load_state_dict(init, strict=False)
        except RuntimeError as exc:  # shape mismatch
            raise ValueError(f"init state does not fit {cfg.spec}: {exc}") from exc
        if unexpected or any(not k.startswith(("text_tail.", "image_tail.")) for k in missing):
            raise ValueError(f"init state does not fit {cfg.spec}: {missing} {unexpected}")
    model = model.to(device)
    loss_fn = make_loss(cfg.loss).to(device)
    train = CachedData(feats, catalog, split.train)
    aux = None
    if cfg.attr_loss > 0:
        classes = {k: n for k, (_, n) in train.attr_codes.items() if n > 1}
        aux = AttributeClassifiers(cfg.spec.dim, classes).to(device)
    params = [p for p in model.parameters() if p.requires_grad] + list(loss_fn.parameters())
    params += list(aux.parameters()) if aux is not None else []
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    val = CachedData(feats, catalog, split.val) if split.val else None
    steps_per_epoch = max(1, len(train.rows) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    rng = np.random.default_rng(cfg.seed)
    best_state, best_score, history, step = None, -1.0, [], 0
    with progress_bar(disable=quiet) as prog:
        task = prog.add_task(label, total=total, info="")
        while step < total:
            order = _epoch_order(train, cfg, rng)
            model.train()
            ep_loss, n_b = 0.0, 0
            for b in range(steps_per_epoch):
                if step >= total:
                    break
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                rows = train.rows[idx]
                text_idx = train.title_text[rows].copy()
                if cfg.title_prob < 1.0:
                    for j, r in enumerate(rows):
                        augs = train.aug_texts[r]
                        if augs and rng.random() > cfg.title_prob:
                            text_idx[j] = augs[rng.integers(len(augs))]
                t = model.encode_text_states(*train.text_batch(text_idx, device))
                v = model.encode_image_maps(*train.image_batch(rows, device, cfg.spec))
                codes = torch.from_numpy(train.title_code[idx]).to(device)
                if cfg.multi_positive:
                    positives = codes[:, None] == codes[None, :]
                else:
                    positives = torch.eye(len(rows), dtype=torch.bool, device=device)
                loss = loss_fn(t, v, positives)
                if aux is not None:
                    labels = {
                        k: torch.from_numpy(train.attr_codes[k][0][idx]).to(device)
                        for k in aux.heads
                    }
                    loss = loss + cfg.attr_loss * 0.5 * (aux(t, labels) + aux(v, labels))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                ep_loss += float(loss.detach())
                n_b += 1
                prog.update(task, advance=1, info=f"loss {float(loss.detach()):.3f}")
            rec = {"step": step, "loss": ep_loss / max(n_b, 1), "temperature": loss_fn.temperature}
            if val is not None:
                rec.update(quick_metrics(model, val, device))
                if rec["score"] > best_score:
                    best_score, best_state = rec["score"], copy.deepcopy(model.state_dict())
            history.append(rec)
            prog.update(
                task, info=f"loss {rec['loss']:.3f} val {rec.get('score', float('nan')):.3f}"
            )
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    val_metrics = quick_metrics(model, val, device) if val is not None else {}
    return TrainResult(model.cpu(), val_metrics, history, loss_fn.temperature, step)
