"""Gateway settings (flags, ``VITRINE_*`` env, YAML; see :mod:`vitrine.serving.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.auth import read_keys
from vitrine.serving.config import ConfigError, ServerConfig
from vitrine.serving.tls import is_loopback

KNOWN_STAGES = ("encode", "search", "rerank", "generate")
IMAGE_URL_ATTRIBUTE = "image_url"


@dataclass
class GatewayConfig(ServerConfig):
    port: int = 50050
    metrics_port: int = 9400
    tls_client_auth: bool = False  # public callers need no client cert (API keys instead)
    encoder: str = "127.0.0.1:50051"
    index_endpoints: list[str] = field(default_factory=lambda: ["127.0.0.1:50052"])
    collection: str = "products"
    text_model: str = "vitrine-text"
    image_model: str = "vitrine-image"
    stages: list[str] = field(default_factory=lambda: list(KNOWN_STAGES))  # in order
    default_k: int = 10
    max_k: int = 1000
    text_weight: float = 0.5  # composite queries: default weights of the text and image parts
    image_weight: float = 0.5
    allow_partial: bool = True  # answer with partial results when an index shard is down
    default_timeout_s: float = 5.0  # per-request deadline when the caller sets none
    retries: int = 2  # retries of UNAVAILABLE downstream calls (with backoff)
    ingest_batch: int = 32  # images per encoder call during ingest
    ingest_inflight: int = 4  # ingest batches in flight per stream (backpressure)
    ingest_timeout_s: float = 60.0  # deadline of one ingest encoder/index call (throughput work)
    num_shards: int = 4  # for a collection the gateway creates on first ingest
    index_spec: str = "HNSW32"
    replication_factor: int = 0  # copies of each shard for a created collection (0: group size)
    # Reranking (the "rerank" stage runs when this model is loaded in the encoder).
    rerank_model: str = "vitrine-rerank"  # empty: never rerank
    rerank_default: bool = True  # rerank requests that do not say
    # ... except photo + text queries composed by the model: reranking them cost success@10 on
    # the validation pool (benchmarks/compose_eval.py), so they are reranked only when asked.
    rerank_composed: bool = False
    rerank_candidates: int = 50  # shortlist when neither request nor model says
    max_rerank_candidates: int = 200
    rerank_margin_ms: float = 3.0  # time kept for after the rerank stage (answer, transport)
    rerank_initial_cost_ms: float = 0.3  # per-candidate cost assumed until one is measured
    rerank_refresh_s: float = 30.0  # how long the answer "is a reranker loaded?" is reused
    # Retrieval: the mode of text-only queries that do not say (vector, lexical or hybrid), the
    # cosine's share in the hybrid blend (from low when the catalog's words cover the query to
    # high when they cover none of it; see gateway.retrieval), and how many hits each list of a
    # hybrid search fetches.
    retrieval_default: str = "hybrid"
    hybrid_vector_weight_low: float = 0.1
    hybrid_vector_weight_high: float = 0.7
    hybrid_depth: int = 30
    # Photo + text queries: the composition model (used when loaded and the request does not ask
    # for "weighted"); empty: always the weighted sum.
    compose_model: str = "vitrine-compose"
    # Query-embedding cache (text queries): entries, and how long one lives (new model versions
    # replace cached vectors within this time). 0 entries: off.
    embed_cache_size: int = 10000
    embed_cache_ttl_s: float = 60.0
    # Retrieval quality: a search whose best vector hit has a lower cosine similarity to the
    # query counts as "no good answer" (vitrine_gateway_low_similarity_searches_total). 0.4 for
    # the default towers: catalog titles as queries reach >= 0.43 in 99% of cases, queries for
    # things the catalog does not sell 0.25-0.37 (docs/operations.md). Re-pick it with new towers.
    low_similarity_threshold: float = 0.4
    # Generation (Describe, describe_query in search, fill_missing at ingest).
    caption_model: str = "vitrine-caption"
    caption_beam: int = 0  # 0: the model's default
    # API keys (gateway.auth): the key file (YAML of hashed keys, e.g. mounted from a Kubernetes
    # Secret; reloaded when it changes). Empty: auth off, every caller may do everything (local
    # use; a warning at start on a non-loopback host). auth_required refuses to start without one.
    api_keys_file: str = ""
    auth_required: bool = False
    # Rate limit (token bucket) of keys whose entry sets none: requests per second (0: no
    # limit) and bucket size (0: one second's worth).
    api_key_rate_per_s: float = 0.0
    api_key_burst: int = 0
    # HTTP/JSON API (gateway.http_app, docs/http-api.md) in the same process, beside gRPC:
    # -1 = off, 0 = a free port. Same keys, scopes, rate limits and TLS files as gRPC.
    http_port: int = -1
    http_host: str = "127.0.0.1"
    # HTTPS with tls_cert_file/tls_key_file (the default). false serves plain HTTP, allowed on a
    # loopback http_host only: `vitrine up` does so that a browser opens the playground without
    # trusting its throwaway CA (gRPC keeps TLS).
    http_tls: bool = True
    # The search playground page at / of the HTTP port (gateway/playground/, docs/http-api.md).
    playground: bool = True
    # Product photos for the playground: the attribute holding a product's image URL (a shop's
    # CDN URL, or /media/... for a local catalog; kept out of the lexical index), and a
    # directory of photos the HTTP port serves read-only under /media/ (empty: none).
    image_url_attribute: str = IMAGE_URL_ATTRIBUTE
    media_dir: str = ""

    def validate(self) -> None:
        super().validate()
        unknown = [s for s in self.stages if s not in KNOWN_STAGES]
        if unknown:
            raise ConfigError(f"stages: unknown {unknown} (known: {list(KNOWN_STAGES)})")
        if self.stages[:2] != ["encode", "search"]:
            raise ConfigError("stages: must start with encode, search")
        if not self.index_endpoints:
            raise ConfigError("index_endpoints: at least one")
        if not 1 <= self.default_k <= self.max_k:
            raise ConfigError("default_k: must be in 1..max_k")
        if (
            self.text_weight < 0
            or self.image_weight < 0
            or self.text_weight + self.image_weight == 0
        ):
            raise ConfigError("text_weight/image_weight: non-negative, not both 0")
        if self.default_timeout_s <= 0 or self.ingest_timeout_s <= 0 or self.retries < 0:
            raise ConfigError("default_timeout_s/ingest_timeout_s must be > 0, retries >= 0")
        if self.ingest_batch < 1 or self.ingest_inflight < 1 or self.num_shards < 1:
            raise ConfigError("ingest_batch/ingest_inflight/num_shards: must be >= 1")
        if self.embed_cache_size < 0 or self.embed_cache_ttl_s <= 0:
            raise ConfigError("embed_cache_size must be >= 0, embed_cache_ttl_s > 0")
        if self.retrieval_default not in ("vector", "lexical", "hybrid"):
            raise ConfigError("retrieval_default: one of vector, lexical, hybrid")
        low, high = self.hybrid_vector_weight_low, self.hybrid_vector_weight_high
        if not 0 <= low <= high <= 1 or self.hybrid_depth < 1:
            raise ConfigError(
                "hybrid_vector_weight_low/high: need 0 <= low <= high <= 1; hybrid_depth >= 1"
            )
        if not -1 <= self.low_similarity_threshold <= 1:
            raise ConfigError("low_similarity_threshold: a cosine similarity, in -1..1")
        if self.caption_beam < 0:
            raise ConfigError("caption_beam: must be >= 0")
        if not 1 <= self.rerank_candidates <= self.max_rerank_candidates:
            raise ConfigError("rerank_candidates: must be in 1..max_rerank_candidates")
        if self.rerank_margin_ms < 0 or self.rerank_initial_cost_ms <= 0:
            raise ConfigError("rerank_margin_ms must be >= 0, rerank_initial_cost_ms > 0")
        if self.rerank_refresh_s < 0:
            raise ConfigError("rerank_refresh_s: must be >= 0")
        if self.api_key_rate_per_s < 0 or self.api_key_burst < 0:
            raise ConfigError("api_key_rate_per_s/api_key_burst: must be >= 0")
        if self.auth_required and not self.api_keys_file:
            raise ConfigError("auth_required: set api_keys_file (the API key file)")
        if not -1 <= self.http_port <= 65535:
            raise ConfigError(f"http_port: {self.http_port} is not a TCP port (or -1)")
        if not self.http_tls and not is_loopback(self.http_host):
            raise ConfigError(
                f"http_tls: false needs a loopback http_host, not {self.http_host} "
                "(plain HTTP is for the local playground only)"
            )
        tls_or_plaintext = (self.tls_cert_file and self.http_tls) or self.plaintext
        if self.http_port >= 0 and not tls_or_plaintext and not is_loopback(self.http_host):
            raise ConfigError(
                f"http_host: {self.http_host} is not a loopback address: give "
                "tls_cert_file/tls_key_file, or set plaintext: true to serve without TLS"
            )
        if self.media_dir and not Path(self.media_dir).is_dir():
            raise ConfigError(f"media_dir: {self.media_dir} is not a directory")
        if self.api_keys_file:
            read_keys(self.api_keys_file)  # exists and parses, or ConfigError naming the entry
