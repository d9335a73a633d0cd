"""Generation end to end: the captioner's export, the encoder's Generate, the gateway's Describe,
describe_query and fill_missing — real servers, real onnxruntime, a tiny caption model."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from encoder_service.client import EncoderClient
from encoder_service.config import EncoderConfig
from encoder_service.server import EncoderServer
from exporter.backbones import ImageColour
from exporter.caption.export import export_captioner
from exporter.caption.model import CaptionEncoderGraph, CaptionStepGraph
from exporter.evaluate_caption import OnnxCaptioner
from gateway.client import SearchClient, product
from gateway.config import GatewayConfig
from gateway.server import GatewayServer
from index_service.config import IndexConfig
from index_service.server import IndexServer
from tests.support.servers import ServerThread
from tests.support.tiny_caption import TinyTrunk, publish_caption, tiny_result
from tests.support.tiny_models import publish_image, publish_text
from vitrine.captioning import BeamState, DecodeOptions, decode, pad_prefixes
from vitrine.model_repo import ModelRepository
from vitrine.preprocess import load_image_file
from vitrine.serving import errors

MAX_LEN = 12  # the tiny model writes exactly MAX_LEN - 1 tokens (words + end)


def _encoder(repo, **kw) -> ServerThread:
    cfg = EncoderConfig(
        models_dir=str(repo),
        port=0,
        metrics_port=-1,
        intra_op_threads=1,
        log_format="text",
        **kw,
    )
    return ServerThread(EncoderServer(cfg))


def _contradictions(title: str, attrs: dict[str, tuple[str, float]], classes) -> list[str]:
    """Gender/colour words in ``title`` that belong to another value than the predicted one."""
    bad = []
    words = {w.lower() for w in title.split()}
    for a in ("gender", "baseColour"):
        mine = set(attrs[a][0].lower().split())
        for v in classes[a]:
            bad += [w for w in set(v.lower().split()) & words if w not in mine]
    return bad


def test_export_parity(tmp_path, demo_catalog):
    result = tiny_result(demo_catalog.products)
    pixels = np.stack([load_image_file(p.image_path) for p in demo_catalog.products[:3]])
    v = export_captioner(ModelRepository(tmp_path), result, pixels, {}, 1, trunk=TinyTrunk())
    assert v.manifest.modality == "caption"
    assert v.manifest.metrics["export_parity_max_abs_diff"] < 1e-4
    assert v.decoder_path.is_file()
    cap = OnnxCaptioner(v)
    memory, probs = cap.encode(pixels)
    assert memory.shape[0] == 3 and probs.shape == (3, v.manifest.outputs["attributes"]["shape"][1])
    for a, (s, e) in v.manifest.caption["attributes"]["spans"].items():
        np.testing.assert_allclose(probs[:, s:e].sum(1), 1.0, atol=1e-5, err_msg=a)
    # Both graphs against the PyTorch modules they were traced from, on unseen photos and
    # ragged prefixes (the export checked its own sample too).
    with torch.no_grad():
        ref_mem, ref_probs = CaptionEncoderGraph(result.model, TinyTrunk(), ImageColour())(
            torch.from_numpy(pixels)
        )
    np.testing.assert_allclose(memory, ref_mem.numpy(), atol=1e-4)
    np.testing.assert_allclose(probs, ref_probs.numpy(), atol=1e-5)
    tokens, lengths = pad_prefixes([[1], [1, 5, 6], [1, 7]])
    got = cap.step(memory, tokens, lengths)
    with torch.no_grad():
        ref = CaptionStepGraph(result.model)(
            torch.from_numpy(memory), torch.from_numpy(tokens), torch.from_numpy(lengths)
        )
    assert got.shape == (3, v.manifest.caption["vocab_size"])
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-4)


def test_beam_search_in_process_matches_the_service(tmp_path, demo_catalog):
    repo = tmp_path / "models"
    v = publish_caption(repo, demo_catalog.products)
    cap = OnnxCaptioner(v)
    photos = demo_catalog.products[:4]
    pixels = np.stack([load_image_file(p.image_path) for p in photos])
    memory, probs = cap.encode(pixels)
    local = cap.describe(memory, probs, DecodeOptions(beam=3, max_tokens=MAX_LEN - 1))
    with _encoder(repo) as enc, EncoderClient(enc.target) as c:
        res = c.generate("vitrine-caption", [p.image_path.read_bytes() for p in photos], beam=3)
    assert [x.title for x in res.captions] == [t for t, _ in local]
    for c_, (_, a) in zip(res.captions, local, strict=True):
        assert {k: v_ for k, (v_, _) in c_.attributes.items()} == {
            k: v_ for k, (v_, _) in a.values.items()
        }


def test_generate_titles_and_attributes_agree(tmp_path, demo_catalog):
    repo = tmp_path / "models"
    v = publish_caption(repo, demo_catalog.products)
    classes = v.manifest.caption["attributes"]["classes"]
    photos = [p.image_path.read_bytes() for p in demo_catalog.products[:8]]
    with _encoder(repo) as enc, EncoderClient(enc.target) as c:
        info = c.model_info("vitrine-caption")[0]
        assert info.caption.max_tokens == MAX_LEN - 1 and "gender" in info.caption.attributes
        res = c.generate("vitrine-caption", photos)
        assert res.version == 1 and len(res.captions) == len(photos)
        for cap in res.captions:
            assert cap.title and cap.tokens == MAX_LEN - 1
            assert set(cap.attributes) == set(classes)
            for name, (value, conf) in cap.attributes.items():
                assert value in classes[name] and value != "<unk>" and 0 < conf <= 1
            assert _contradictions(cap.title, cap.attributes, classes) == []
        # Shorter titles on request; greedy and beam both answer.
        short = c.generate("vitrine-caption", photos[:1], beam=1, max_tokens=4)
        assert short.captions[0].tokens == 4 and len(short.captions[0].title.split()) == 3


def test_concurrent_requests_share_decoder_steps_and_get_their_own_titles(tmp_path, demo_catalog):
    repo = tmp_path / "models"
    publish_caption(repo, demo_catalog.products)
    photos = [p.image_path.read_bytes() for p in demo_catalog.products[:12]]
    with _encoder(repo) as enc, EncoderClient(enc.target) as c:
        alone = [c.generate("vitrine-caption", [ph]).captions[0].title for ph in photos]
        with ThreadPoolExecutor(12) as pool:
            together = list(
                pool.map(lambda ph: c.generate("vitrine-caption", [ph]).captions[0].title, photos)
            )
        assert together == alone
        samples = {
            x.name: x.value
            for m in enc.server.encoder.metrics.step_rows.collect()
            for x in m.samples
            if x.labels.get("model") == "vitrine-caption"
        }
        count = samples["vitrine_encoder_decode_step_rows_count"]
        total = samples["vitrine_encoder_decode_step_rows_sum"]
    # 24 generations of 11 steps each ran in fewer, fuller executions than one per step.
    assert count < 24 * (MAX_LEN - 1)
    assert total == 24 * (MAX_LEN - 1)


def test_deadline_mid_generation_frees_the_slot(tmp_path, demo_catalog):
    repo = tmp_path / "models"
    publish_caption(repo, demo_catalog.products, burn=60)
    photo = demo_catalog.products[0].image_path.read_bytes()
    with _encoder(repo, max_generate_photos=1) as enc, EncoderClient(enc.target) as c:
        t0 = time.perf_counter()
        c.generate("vitrine-caption", [photo])  # warm-up, and how long one takes
        full = time.perf_counter() - t0
        with pytest.raises(errors.DeadlineExceeded):
            c.generate("vitrine-caption", [photo], timeout=full / 3)
        # The expired request left the step loop: the single slot is free again.
        time.sleep(0.05)
        assert enc.server.encoder.models.get("vitrine-caption", 0).steps.photos == 0
        assert c.generate("vitrine-caption", [photo]).captions[0].tokens == MAX_LEN - 1


def test_generate_refuses_bad_input(tmp_path, demo_catalog):
    repo = tmp_path / "models"
    publish_caption(repo, demo_catalog.products)
    publish_text(repo, "tiny-text", dim=16)
    photo = demo_catalog.products[0].image_path.read_bytes()
    with _encoder(repo, max_beam=4) as enc, EncoderClient(enc.target) as c:
        with pytest.raises(errors.InvalidArgument, match=r"images\[1\]"):
            c.generate("vitrine-caption", [photo, b"not a photo"])
        with pytest.raises(errors.InvalidArgument, match="images: empty"):
            c.generate("vitrine-caption", [])
        with pytest.raises(errors.InvalidArgument, match="beam"):
            c.generate("vitrine-caption", [photo], beam=5)
        with pytest.raises(errors.InvalidArgument, match="max_tokens"):
            c.generate("vitrine-caption", [photo], max_tokens=MAX_LEN + 5)
        with pytest.raises(errors.InvalidArgument, match="model"):
            c.generate("tiny-text", [photo])
        with pytest.raises(errors.NotFound):
            c.generate("no-such-captioner", [photo])
        assert c.generate("vitrine-caption", [photo]).captions[0].title  # still serving


class GatewayStack:
    def __init__(self, tmp, catalog, with_caption=True):
        self.repo = tmp / "models"
        publish_text(self.repo, "tiny-text", dim=16)
        publish_image(self.repo, "tiny-image", dim=16)
        if with_caption:
            publish_caption(self.repo, catalog.products)
        self.enc = _encoder(self.repo)
        self.index = ServerThread(
            IndexServer(
                IndexConfig(data_dir=str(tmp / "index"), port=0, metrics_port=-1, log_format="text")
            )
        )

    def __enter__(self):
        self.enc.__enter__()
        self.index.__enter__()
        cfg = GatewayConfig(
            port=0,
            metrics_port=-1,
            encoder=self.enc.target,
            index_endpoints=[self.index.target],
            text_model="tiny-text",
            image_model="tiny-image",
            index_spec="Flat",
            num_shards=2,
            log_format="text",
        )
        self.gw = ServerThread(GatewayServer(cfg)).__enter__()
        self.client = SearchClient(self.gw.target)
        return self

    def __exit__(self, *exc):
        self.client.close()
        for s in (self.gw, self.index, self.enc):
            s.__exit__(*exc)


def test_describe_and_describe_query_through_the_gateway(tmp_path, demo_catalog):
    products = demo_catalog.products[:10]
    with GatewayStack(tmp_path, demo_catalog) as st:
        c = st.client
        photo = products[0].image_path.read_bytes()
        d = c.describe(photo)
        assert d.title and d.model == "vitrine-caption/1"
        names = {a.name for a in d.attributes}
        assert {"gender", "baseColour", "articleType"} <= names
        with pytest.raises(errors.InvalidArgument, match="image"):
            c.describe(b"")
        with pytest.raises(errors.InvalidArgument, match="images"):
            c.describe(b"garbage")
        c.ingest(
            [
                [
                    product(p.id, p.title, dict(p.attributes), p.image_path.read_bytes())
                    for p in products
                ]
            ]
        )
        r = c.search(image=photo, k=3, describe_query=True)
        assert r.query_description.title == d.title
        assert "generate" in r.stages_run and not r.degraded_stages
        plain = c.search(image=photo, k=3)
        assert not plain.HasField("query_description") and "generate" not in plain.stages_run


def test_fill_missing_at_ingest(tmp_path, demo_catalog):
    a, b, c_ = demo_catalog.products[:3]
    with GatewayStack(tmp_path, demo_catalog) as st:
        c = st.client
        no_title = product("p-no-title", "", {"gender": "Women"}, a.image_path.read_bytes())
        given = product("p-given", b.title, dict(b.attributes), b.image_path.read_bytes())
        partial = product("p-partial", c_.title, {"usage": "Sports"}, c_.image_path.read_bytes())
        statuses = c.upsert([no_title, given, partial], fill_missing=True)
        assert [s.code for s in statuses] == [0, 0, 0]
        hits = {
            r.product_id: r for r in c.search(text=b.title, k=10, include_attributes=True).results
        }
        assert set(hits) == {"p-no-title", "p-given", "p-partial"}
        filled = hits["p-no-title"]
        assert filled.caption  # a generated title, searchable and shown
        gen = list(filled.attributes["generated"].list_value.values)
        assert "title" in gen and "gender" not in gen  # the given gender is kept
        assert filled.attributes["gender"].string_value == "Women"
        assert hits["p-given"].caption == b.title and "generated" not in hits["p-given"].attributes
        part = hits["p-partial"]
        assert part.caption == c_.title and part.attributes["usage"].string_value == "Sports"
        assert "usage" not in part.attributes["generated"].list_value.values
        assert "gender" in part.attributes["generated"].list_value.values
        # Without fill_missing a title-less product is refused, naming the field.
        (s,) = c.upsert([product("p-x", "", {}, a.image_path.read_bytes())])
        assert s.code == 3 and "title" in s.message


def test_without_a_caption_model_generation_degrades(tmp_path, demo_catalog):
    p = demo_catalog.products[0]
    with GatewayStack(tmp_path, demo_catalog, with_caption=False) as st:
        c = st.client
        with pytest.raises(errors.NotFound, match="vitrine-caption"):
            c.describe(p.image_path.read_bytes())
        (s,) = c.upsert([product("p1", p.title, {}, p.image_path.read_bytes())], fill_missing=True)
        assert s.code == 0  # has a title: indexed as given
        (s,) = c.upsert([product("p2", "", {}, p.image_path.read_bytes())], fill_missing=True)
        assert s.code == 5 and "fill_missing" in s.message
        r = c.search(image=p.image_path.read_bytes(), k=2, describe_query=True)
        assert r.results and "generate" in r.degraded_stages


def test_step_loop_decodes_like_the_reference_loop():
    """The service's step loop and :func:`vitrine.captioning.decode` agree (plain logic)."""
    from encoder_service.generation import StepLoop

    rng = np.random.default_rng(0)
    table = rng.normal(size=(5, 30)).astype(np.float32)

    def step(memory, tokens, lengths):
        last = tokens[np.arange(len(tokens)), lengths - 1]
        logits = table[memory[:, 0].astype(int)] + 0.1 * last[:, None]
        return logits - np.log(np.exp(logits).sum(1, keepdims=True))

    memory = np.arange(5, dtype=np.float32)[:, None]
    banned = np.zeros(30, bool)
    banned[[0, 1, 3]] = True
    opts = DecodeOptions(beam=2, max_tokens=6)
    ref = decode(step, memory, [BeamState(i, opts, banned) for i in range(5)])

    async def run():
        loop = StepLoop("t", step, ThreadPoolExecutor(1), max_rows=4, max_photos=10)
        loop.start()
        out = await asyncio.gather(
            *(loop.decode(memory[i : i + 1], [BeamState(0, opts, banned)], None) for i in range(5))
        )
        await loop.close()
        return [o[0] for o in out]

    got = asyncio.run(run())
    assert [h.tokens for h in got] == [h.tokens for h in ref]
    assert all(len(h.tokens) <= 5 for h in got)


def test_caption_step_graph_gathers_each_rows_last_position(demo_catalog, tmp_path):
    v = publish_caption(tmp_path, demo_catalog.products)
    cap = OnnxCaptioner(v)
    memory, _ = cap.encode(
        np.stack([load_image_file(p.image_path) for p in demo_catalog.products[:2]])
    )
    # A prefix padded on the right gives the same next-word distribution as unpadded.
    t1, l1 = pad_prefixes([[1, 5]])
    t2, l2 = pad_prefixes([[1, 5], [1, 5, 6, 7, 8]])
    one = cap.step(memory[:1], t1, l1)
    two = cap.step(memory[[0, 0]], t2, l2)
    np.testing.assert_allclose(one[0], two[0], atol=1e-5)


def test_reconcile_follows_the_title_and_the_category_hierarchy():
    from vitrine.captioning import Attributes, reconcile

    classes = {
        "articleType": ["Trunks", "Wallets", "Sports Shoes", "Shoes", "<unk>"],
        "subCategory": ["Innerwear", "Wallets", "Shoes", "<unk>"],
        "masterCategory": ["Apparel", "Accessories", "Footwear", "<unk>"],
    }
    spans, start = {}, 0
    for a, c in classes.items():
        spans[a] = [start, start + len(c)]
        start += len(c)
    layout = {
        "spans": spans,
        "classes": classes,
        "hierarchy": {
            "Trunks": {"subCategory": "Innerwear", "masterCategory": "Apparel"},
            "Wallets": {"subCategory": "Wallets", "masterCategory": "Accessories"},
            "Sports Shoes": {"subCategory": "Shoes", "masterCategory": "Footwear"},
        },
    }
    probs = np.linspace(0.01, 0.5, start).astype(np.float32)
    heads = Attributes(
        {
            "articleType": ("Wallets", 0.86),
            "subCategory": ("Wallets", 0.86),
            "masterCategory": ("Accessories", 0.9),
        }
    )
    out = reconcile("Levis Men Boxer Maroon Trunks", heads, probs, layout).values
    assert out["articleType"][0] == "Trunks" and out["articleType"][1] == pytest.approx(probs[0])
    assert out["subCategory"][0] == "Innerwear" and out["masterCategory"][0] == "Apparel"
    # The longest type name the title contains wins; no type named: the heads stand, and
    # the categories follow the head's type.
    shoes = reconcile("Puma Men Black Sports Shoes", heads, probs, layout).values
    assert shoes["articleType"][0] == "Sports Shoes" and shoes["masterCategory"][0] == "Footwear"
    assert reconcile("Puma Men Black Cap", heads, probs, layout).values == heads.values
    single = reconcile("Levis Men Boxer Maroon Trunk", heads, probs, layout).values
    assert single["articleType"][0] == "Trunks"  # singular and plural are one type word


def test_mask_bans_other_values_words_but_not_shared_ones():
    from vitrine.captioning import Attributes, ConsistencyMask

    vocab = [
        "[PAD]",
        "[BOS]",
        "[EOS]",
        "[UNK]",
        "Wallet",
        "Trunk",
        "Casual",
        "Shoes",
        "Men",
        "Women",
    ]
    classes = {
        "articleType": ["Wallets", "Trunks", "Casual Shoes", "<unk>"],
        "usage": ["Casual", "Sports"],
        "gender": ["Men", "Women"],
    }
    mask = ConsistencyMask(vocab, classes)
    banned = mask.banned(
        Attributes(
            {"articleType": ("Wallets", 0.9), "gender": ("Men", 0.9), "usage": ("Casual", 1)}
        )
    )
    by_word = dict(zip(vocab, banned, strict=True))
    assert by_word["Trunk"] and by_word["Shoes"] and by_word["Women"]  # other values' words
    assert not by_word["Wallet"] and not by_word["Men"]  # the predicted ones (any number)
    assert not by_word["Casual"]  # also a usage value: not the type's to ban
    assert not by_word["[EOS]"] and by_word["[UNK]"]
