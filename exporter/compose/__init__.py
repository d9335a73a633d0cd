"""The query composer: "this photo, but in red".

A composite query (a reference photo + a modifier text) was the renormalised weighted sum of the
two towers' unit embeddings; that stays near the photo. The composer is a small trained model in
the spirit of CLIP4Cir's Combiner (and TIRG): from the reference photo's image embedding and the
modifier's text embedding it produces the query embedding, searched against the same index of
photo embeddings. It reads embeddings only, so it trains in minutes on CPU from embeddings
computed once with the exported towers.

Modules: :mod:`~exporter.compose.phrases` (modifier phrasings, the text-only target phrase),
:mod:`~exporter.compose.triplets` (reference, change, targets from the catalog attributes),
:mod:`~exporter.compose.embeddings` (the towers' embeddings, cached),
:mod:`~exporter.compose.model` (the combiner), :mod:`~exporter.compose.metrics` (success@10,
style kept), :mod:`~exporter.compose.train`, :mod:`~exporter.compose.export` (ONNX, manifest),
:mod:`~exporter.compose.pipeline` (:func:`~exporter.compose.pipeline.train_composer`).
"""
