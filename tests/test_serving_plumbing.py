"""Shared server plumbing: config loading, error mapping, the dynamic batcher on its own."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from encoder_service.batcher import BatchStats, DynamicBatcher
from encoder_service.config import EncoderConfig
from vitrine.serving import errors
from vitrine.serving.config import ConfigError, load_config
from vitrine.tensors import from_tensor, to_tensor


def test_config_precedence_defaults_yaml_env_flags(tmp_path):
    f = tmp_path / "enc.yaml"
    f.write_text("max_batch_size: 16\nmax_queue_delay_us: 500\nmodels: [a, 'b:2']\nport: 7000\n")
    env = {"VITRINE_MAX_QUEUE_DELAY_US": "750", "VITRINE_PORT": "7001", "OTHER": "x"}
    cfg = load_config(EncoderConfig, f, {"port": 7002, "instances": None}, env=env)
    assert cfg.max_batch_size == 16  # YAML over default
    assert cfg.max_queue_delay_us == 750  # env over YAML
    assert cfg.port == 7002  # flag over env
    assert cfg.instances == 1  # None flag = not given
    assert cfg.models == ["a", "b:2"]
    assert load_config(EncoderConfig, env={"VITRINE_MODELS": "x,y:3"}).models == ["x", "y:3"]


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ({"max_batch_size": "0"}, "max_batch_size"),
        ({"providers": "tpu"}, "providers"),
        ({"port": "http"}, "port: cannot read 'http' as int"),
        ({"text_overflow": "drop"}, "text_overflow"),
        ({"models": "a:b"}, "models"),
    ],
)
def test_config_validation_names_the_setting(source, fragment):
    env = {f"VITRINE_{k.upper()}": v for k, v in source.items()}
    with pytest.raises(ConfigError, match=fragment):
        load_config(EncoderConfig, env=env)


def test_config_file_with_unknown_setting_is_refused(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("max_batch_sise: 3\n")
    with pytest.raises(ConfigError, match="unknown settings"):
        load_config(EncoderConfig, f, env={})


def test_tensor_round_trip_and_checks():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = to_tensor(a)
    assert t.data == a.astype("<f4").tobytes() and list(t.shape) == [3, 4]
    assert np.array_equal(from_tensor(t), a)
    t.shape[:] = [5, 4]
    with pytest.raises(ValueError, match="do not match shape"):
        from_tensor(t, "embeddings")


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code, details, trailing=()):
        self._c, self._d, self._t = code, details, trailing

    def code(self):
        return self._c

    def details(self):
        return self._d

    def trailing_metadata(self):
        return self._t


def test_rpc_errors_map_to_typed_errors():
    e = errors.from_rpc_error(
        _FakeRpcError(
            grpc.StatusCode.RESOURCE_EXHAUSTED, "full", (("grpc-retry-pushback-ms", "250"),)
        )
    )
    assert isinstance(e, errors.ResourceExhausted) and e.retry_after_s == 0.25
    e = errors.from_rpc_error(_FakeRpcError(grpc.StatusCode.DATA_LOSS, "boom"))
    assert type(e) is errors.VitrineError and e.code == grpc.StatusCode.DATA_LOSS


def _batcher(run, **kw):
    calls: list[int] = []
    stats = BatchStats(on_batch=lambda n, s: calls.append(n))
    b = DynamicBatcher(
        "m",
        run,
        ThreadPoolExecutor(1),
        max_batch=kw.get("max_batch", 8),
        max_queue_delay_s=kw.get("delay", 0.05),
        max_queue_items=kw.get("max_queue", 64),
        stats=stats,
    )
    return b, calls


def test_batcher_merges_requests_and_returns_each_its_rows():
    def run(parts):
        return np.concatenate(parts) * 2

    async def go():
        b, calls = _batcher(run)
        b.start()
        outs = await asyncio.gather(
            *(b.submit(np.full((k, 2), k, np.float32), k) for k in (1, 2, 3, 2))
        )
        await b.close()
        return outs, calls

    outs, calls = asyncio.run(go())
    assert [o.shape[0] for o in outs] == [1, 2, 3, 2]
    assert all((o == 2 * o.shape[0]).all() for o in outs)
    assert calls == [8]  # one execution of all 8 items


def test_batcher_failed_execution_fails_its_requests_only_and_goes_on():
    def run(parts):
        batch = np.concatenate(parts)
        if (batch < 0).any():
            raise RuntimeError("bad batch")
        return batch

    async def go():
        b, _ = _batcher(run, delay=0.0, max_batch=1)
        b.start()
        bad = b.submit(np.array([[-1.0]], np.float32), 1)
        good = b.submit(np.array([[1.0]], np.float32), 1)
        res = await asyncio.gather(bad, good, return_exceptions=True)
        await b.close()
        return res

    bad, good = asyncio.run(go())
    assert isinstance(bad, errors.Internal) and "bad batch" in bad.message
    assert good.tolist() == [[1.0]]


def test_batcher_bounded_queue_refuses_with_retry_hint():
    async def go():
        b, _ = _batcher(lambda parts: np.concatenate(parts), max_queue=8, max_batch=8)
        # not started: nothing drains the queue
        b._cond = asyncio.Condition()
        first = asyncio.ensure_future(b.submit(np.zeros((8, 1), np.float32), 8))
        await asyncio.sleep(0)
        with pytest.raises(errors.ResourceExhausted) as err:
            await b.submit(np.zeros((1, 1), np.float32), 1)
        first.cancel()
        return err.value

    err = asyncio.run(go())
    assert err.retry_after_s and err.retry_after_s > 0


def test_clients_spread_calls_over_every_address_and_survive_connection_ageing(tmp_path):
    """A target with several addresses (what a headless Service resolves to) gets round-robin
    calls; a server's max_connection_age closes connections and the client reconnects."""
    import time

    from index_service.client import IndexClient
    from index_service.config import IndexConfig
    from index_service.server import IndexServer
    from tests.support.servers import ServerThread, metric_value, scrape

    def config(name):
        return IndexConfig(
            data_dir=str(tmp_path / name),
            port=0,
            metrics_port=0,
            log_format="text",
            max_connection_age_s=0.5,
        )

    with ServerThread(IndexServer(config("a"))) as a, ServerThread(IndexServer(config("b"))) as b:
        target = f"ipv4:127.0.0.1:{a.server.port},127.0.0.1:{b.server.port}"
        with IndexClient(target, timeout=5) as c:
            c.wait_ready(10)
            t_end = time.monotonic() + 1.5  # outlives the servers' connection age
            calls = 0
            while time.monotonic() < t_end:
                assert c.list_collections() == []
                calls += 1
                time.sleep(0.01)
        served = [
            metric_value(
                scrape(s.server.metrics_port),
                "vitrine_grpc_requests_total",
                method="ListCollections",
                code="OK",
            )
            for s in (a, b)
        ]
    assert sum(served) == calls  # every call answered, across reconnections
    assert min(served) >= calls / 4, served  # both addresses took a share
