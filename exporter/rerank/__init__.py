"""The reranker: an image-text matching model that reorders the towers' top candidates.

What it reads (docs/quality.md has the measurements behind each part):

* the **payload** of a product photo, computed once by the image tower at ingest (and on the fly
  for a photo query): the photo's predicted attributes (log-probabilities per catalog attribute
  and brand), a tagger's logits for the words of product titles, and a 128-d descriptor of its
  mid-level visual features — float16, a few KB, stored beside the vector in the index;
* the **text** (the query, or a candidate's title for a photo query): wordpiece ids of the
  MiniLM tokenizer, read by a light bag-of-wordpieces model inside the reranker graph;
* the pair's **retrieval score**.

It scores a (text, photo) pair by how well the text's attributes and words agree with what the
photo shows, plus a memory of the training catalog (text → training titles → their photos → this
photo, and the reverse), combined with the retrieval score by weights fitted on the validation
split (one set per query direction).

Modules: :mod:`~exporter.rerank.labels` (vocabularies, labels, text augmentation),
:mod:`~exporter.rerank.image_heads` (photo → payload), :mod:`~exporter.rerank.text_heads`
(wordpieces → attribute distributions and a lexical vector), :mod:`~exporter.rerank.model` (the
pair scorer), :mod:`~exporter.rerank.train`, :mod:`~exporter.rerank.export`.
"""
