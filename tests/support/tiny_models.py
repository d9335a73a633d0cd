"""Tiny ONNX towers published into a temp model repository, for fast service tests.

Real onnxruntime runs them; they have the same inputs/outputs as the default towers:

* text: ``input_ids``/``attention_mask`` (int64 [batch, seq]) → embedding lookup → masked mean →
  L2 normalise, with a small word-level ``tokenizer.json`` built by the ``tokenizers`` library;
* image: ``pixels`` (uint8 [batch, H, W, 3]) → conv → ReLU → global mean → linear → L2
  normalise. ``conv_channels``/``kernel`` make it as slow as a test needs (queueing tests).
  With ``payload_width`` it also outputs a float16 ``payload`` (a second projection of the pooled
  conv features), as the default image tower does for the reranker;
* rerank: (``text_ids``, ``text_mask``, ``payload``, ``retrieval``, ``direction``) → ``match`` =
  mean payload value × (1 + mean token id / 100) + 0.1 × direction, ``score`` = match +
  ``retrieval_weight`` × retrieval. ``burn`` adds a chain of square matmuls per pair, to make it
  as slow per candidate as a deadline test needs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vitrine.model_repo import MODEL_FILE, TOKENIZER_FILE, Manifest, ModelRepository

WORDS = [
    "men",
    "women",
    "boys",
    "girls",
    "unisex",
    "navy",
    "blue",
    "black",
    "white",
    "red",
    "green",
    "grey",
    "brown",
    "pink",
    "purple",
    "yellow",
    "orange",
    "beige",
    "maroon",
    "silver",
    "gold",
    "shirt",
    "shirts",
    "tshirt",
    "tshirts",
    "jeans",
    "dress",
    "dresses",
    "shoes",
    "casual",
    "sports",
    "formal",
    "watch",
    "watches",
    "bag",
    "handbag",
    "backpack",
    "socks",
    "shorts",
    "trousers",
    "top",
    "tops",
    "kurta",
    "saree",
    "heels",
    "sandals",
    "flip",
    "flops",
    "jacket",
    "sweater",
    "cap",
    "belt",
    "wallet",
    "sunglasses",
    "printed",
    "striped",
    "solid",
    "check",
    "polo",
    "round",
    "neck",
    "slim",
    "fit",
    "the",
    "a",
    "and",
    "in",
    "with",
    "for",
    "this",
    "but",
]


def build_tokenizer(path: Path) -> int:
    """A word-level BERT-style tokenizer ([CLS] text [SEP]); returns the vocabulary size."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.save(str(path))
    return len(vocab)


def _l2(graph_nodes: list, x: str, out: str) -> None:
    graph_nodes += [
        helper.make_node("ReduceL2", [x, "axis_last"], ["norm"], keepdims=1),
        helper.make_node("Max", ["norm", "eps"], ["norm_safe"]),
        helper.make_node("Div", [x, "norm_safe"], [out]),
    ]


def text_model(vocab: int, dim: int, seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((vocab, dim)).astype(np.float32)
    inits = [
        numpy_helper.from_array(emb, "emb"),
        numpy_helper.from_array(np.array([1], np.int64), "axis_seq"),
        numpy_helper.from_array(np.array([-1], np.int64), "axis_last"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["tok"]),  # [B, S, D]
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis_last"], ["mask3"]),
        helper.make_node("Mul", ["tok", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis_seq"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "axis_seq"], ["count"], keepdims=0),
        helper.make_node("Max", ["count", "eps"], ["count_safe"]),
        helper.make_node("Div", ["summed", "count_safe"], ["mean"]),
    ]
    _l2(nodes, "mean", "embedding")
    graph = helper.make_graph(
        nodes,
        "tiny_text",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info(
                "attention_mask", TensorProto.INT64, ["batch", "sequence"]
            ),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def image_model(
    dim: int,
    seed: int,
    conv_channels: int = 8,
    kernel: int = 3,
    stride: int = 4,
    payload_width: int = 0,
) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((conv_channels, 3, kernel, kernel)) * 0.1).astype(np.float32)
    proj = rng.standard_normal((conv_channels, dim)).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "conv_w"),
        numpy_helper.from_array(proj, "proj"),
        numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
        numpy_helper.from_array(np.array(0.5, np.float32), "shift"),
        numpy_helper.from_array(np.array([-1], np.int64), "axis_last"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axis_hw"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("Cast", ["pixels"], ["pf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["pf", "scale"], ["p01"]),
        helper.make_node("Sub", ["p01", "shift"], ["pc"]),
        helper.make_node("Transpose", ["pc"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node(
            "Conv", ["nchw", "conv_w"], ["conv"], strides=[stride, stride], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["conv"], ["act"]),
        helper.make_node("ReduceMean", ["act", "axis_hw"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "proj"], ["projected"]),
    ]
    _l2(nodes, "projected", "embedding")
    outputs = [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])]
    if payload_width:
        pproj = rng.standard_normal((conv_channels, payload_width)).astype(np.float32)
        inits.append(numpy_helper.from_array(pproj, "payload_proj"))
        nodes += [
            helper.make_node("MatMul", ["pooled", "payload_proj"], ["payload32"]),
            helper.make_node("Cast", ["payload32"], ["payload"], to=TensorProto.FLOAT16),
        ]
        outputs.append(
            helper.make_tensor_value_info("payload", TensorProto.FLOAT16, ["batch", payload_width])
        )
    graph = helper.make_graph(
        nodes,
        "tiny_image",
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["batch", 224, 224, 3])],
        outputs,
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def rerank_model(retrieval_weight: float = 2.0, burn: int = 0, burn_layers: int = 4):
    """The tiny rerank graph (see the module docstring)."""
    f = TensorProto.FLOAT
    inits = [
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array(100.0, np.float32), "hundred"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(0.1, np.float32), "tenth"),
        numpy_helper.from_array(np.array(retrieval_weight, np.float32), "rw"),
    ]
    nodes = [
        helper.make_node("Cast", ["payload"], ["p32"], to=f),
        helper.make_node("ReduceMean", ["p32", "axis1"], ["pmean"], keepdims=0),
        helper.make_node("Cast", ["text_ids"], ["ids_f"], to=f),
        helper.make_node("Cast", ["text_mask"], ["mask_f"], to=f),
        helper.make_node("Mul", ["ids_f", "mask_f"], ["ids_m"]),
        helper.make_node("ReduceSum", ["ids_m", "axis1"], ["ids_sum"], keepdims=0),
        helper.make_node("ReduceSum", ["mask_f", "axis1"], ["n_tok"], keepdims=0),
        helper.make_node("Max", ["n_tok", "one"], ["n_safe"]),
        helper.make_node("Div", ["ids_sum", "n_safe"], ["ids_mean"]),
        helper.make_node("Div", ["ids_mean", "hundred"], ["ids_scaled"]),
        helper.make_node("Add", ["ids_scaled", "one"], ["factor"]),
        helper.make_node("Mul", ["pmean", "factor"], ["m0"]),
        helper.make_node("Cast", ["direction"], ["dir_f"], to=f),
        helper.make_node("Mul", ["dir_f", "tenth"], ["dir_term"]),
        helper.make_node("Add", ["m0", "dir_term"], ["m1"]),
    ]
    last = "m1"
    if burn:  # [pairs, burn] @ [burn, burn] ... then averaged to 0 and added: costs time only
        rng = np.random.default_rng(0)
        inits += [
            numpy_helper.from_array(np.ones((1, burn), np.float32), "ones_row"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ]
        nodes += [
            helper.make_node("Unsqueeze", ["m1", "axis1"], ["m1c"]),
            helper.make_node("MatMul", ["m1c", "ones_row"], ["h0"]),
        ]
        for i in range(burn_layers):
            w = (rng.standard_normal((burn, burn)) / burn).astype(np.float32)
            inits.append(numpy_helper.from_array(w, f"burn_w{i}"))
            nodes.append(helper.make_node("MatMul", [f"h{i}", f"burn_w{i}"], [f"h{i + 1}"]))
        nodes += [
            helper.make_node("ReduceMean", [f"h{burn_layers}", "axis1"], ["hm"], keepdims=0),
            helper.make_node("Mul", ["hm", "zero"], ["h_zero"]),
            helper.make_node("Add", ["m1", "h_zero"], ["m2"]),
        ]
        last = "m2"
    nodes += [
        helper.make_node("Identity", [last], ["match"]),
        helper.make_node("Mul", ["retrieval", "rw"], ["r_term"]),
        helper.make_node("Add", [last, "r_term"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_rerank",
        [
            helper.make_tensor_value_info("text_ids", TensorProto.INT64, ["pairs", "sequence"]),
            helper.make_tensor_value_info("text_mask", TensorProto.INT64, ["pairs", "sequence"]),
            helper.make_tensor_value_info("payload", TensorProto.FLOAT16, ["pairs", "width"]),
            helper.make_tensor_value_info("retrieval", f, ["pairs"]),
            helper.make_tensor_value_info("direction", TensorProto.INT64, ["pairs"]),
        ],
        [
            helper.make_tensor_value_info("score", f, ["pairs"]),
            helper.make_tensor_value_info("match", f, ["pairs"]),
        ],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def publish_text(
    repo_dir: Path,
    name: str = "tiny-text",
    version: int | None = None,
    dim: int = 16,
    max_length: int = 16,
    seed: int = 0,
    max_batch_size: int = 64,
) -> Manifest:
    repo = ModelRepository(repo_dir)
    version, d = repo.new_version_dir(name, version)
    vocab = build_tokenizer(d / TOKENIZER_FILE)
    onnx.save(text_model(vocab, dim, seed + version), d / MODEL_FILE)
    m = Manifest(
        name=name,
        version=version,
        modality="text",
        embedding_dim=dim,
        inputs={
            "input_ids": {"dtype": "int64", "shape": ["batch", "sequence"]},
            "attention_mask": {"dtype": "int64", "shape": ["batch", "sequence"]},
        },
        max_batch_size=max_batch_size,
        opset=18,
        tokenizer={"file": TOKENIZER_FILE, "max_length": max_length, "name": "tiny-wordlevel"},
        training={"note": "tiny random test model"},
    )
    repo.publish(m)
    return m


def publish_image(
    repo_dir: Path,
    name: str = "tiny-image",
    version: int | None = None,
    dim: int = 16,
    seed: int = 0,
    max_batch_size: int = 64,
    payload_width: int = 0,
    **conv,
) -> Manifest:
    repo = ModelRepository(repo_dir)
    version, d = repo.new_version_dir(name, version)
    onnx.save(image_model(dim, seed + version, payload_width=payload_width, **conv), d / MODEL_FILE)
    outputs = {}
    if payload_width:
        outputs["payload"] = {
            "dtype": "float16",
            "shape": ["batch", payload_width],
            "layout": {"width": payload_width, "dtype": "float16", "bytes": 2 * payload_width},
        }
    m = Manifest(
        name=name,
        version=version,
        modality="image",
        embedding_dim=dim,
        inputs={"pixels": {"dtype": "uint8", "shape": ["batch", 224, 224, 3]}},
        outputs=outputs,
        max_batch_size=max_batch_size,
        opset=18,
        preprocessing={"size": 224, "function": "vitrine.preprocess.decode_image"},
        training={"note": "tiny random test model"},
    )
    repo.publish(m)
    return m


def publish_rerank(
    repo_dir: Path,
    name: str = "tiny-rerank",
    version: int | None = None,
    payload_width: int = 8,
    text_model: str = "tiny-text/1",
    image_model: str = "tiny-image/1",
    candidates: int = 50,
    **graph,
) -> Manifest:
    """A tiny rerank model reading ``payload_width`` float16 values per photo."""
    repo = ModelRepository(repo_dir)
    version, d = repo.new_version_dir(name, version)
    build_tokenizer(d / TOKENIZER_FILE)
    onnx.save(rerank_model(**graph), d / MODEL_FILE)
    m = Manifest(
        name=name,
        version=version,
        modality="rerank",
        embedding_dim=0,
        inputs={
            "text_ids": {"dtype": "int64", "shape": ["pairs", "sequence"]},
            "text_mask": {"dtype": "int64", "shape": ["pairs", "sequence"]},
            "payload": {"dtype": "float16", "shape": ["pairs", payload_width]},
            "retrieval": {"dtype": "float32", "shape": ["pairs"]},
            "direction": {"dtype": "int64", "shape": ["pairs"]},
        },
        output="score",
        outputs={"match": {"dtype": "float32", "shape": ["pairs"]}},
        normalized=False,
        opset=18,
        tokenizer={"file": TOKENIZER_FILE, "max_length": 16, "name": "tiny-wordlevel"},
        rerank={
            "text_model": text_model,
            "image_model": image_model,
            "payload": {"width": payload_width, "dtype": "float16", "bytes": 2 * payload_width},
            "directions": ["text_query", "photo_query"],
            "candidates": candidates,
        },
        training={"note": "tiny test model"},
    )
    repo.publish(m)
    return m
