"""A short run of the fuzz engine (benchmarks/fuzz.py): malformed requests against a real stack
(encoder with the tiny models, two index processes, the gateway with an API-key file) end in
clear statuses, crash nothing, and leave the stack healthy.
"""

from __future__ import annotations

import pytest

from benchmarks.fuzz import CATEGORIES, FAILED, FuzzSession

REQUESTS = 200
SEED = 1


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    with FuzzSession(workdir=tmp_path_factory.mktemp("fuzz"), auth=True, seed_products=8) as s:
        yield s


def test_malformed_requests_get_clear_answers_and_the_stack_stays_healthy(session):
    report = session.run(range(REQUESTS), seed=SEED, concurrency=8)
    assert len(report.outcomes) == REQUESTS
    assert not report.crashes, report.crashes
    failed = [o for o in report.outcomes if o.verdict in FAILED]
    assert not failed, [
        f"{o.spec.describe()} -> {o.code}: {o.message[:200]} {o.why}" for o in failed
    ]
    assert report.healthy, report.health
    # Every category was exercised, and the gateway refused the bad tokens.
    assert {o.spec.category for o in report.outcomes} == set(CATEGORIES)
    assert report.auth
    assert any(
        o.code == "UNAUTHENTICATED" for o in report.outcomes if o.spec.category == "bad_token"
    )


def test_a_run_is_reproducible_from_its_seed(session):
    from benchmarks.fuzz import Generator

    a = Generator(session.ctx, SEED).spec(17)
    b = Generator(session.ctx, SEED).spec(17)
    assert (a.rpc.path, a.category, a.variant, a.payload) == (
        b.rpc.path,
        b.category,
        b.variant,
        b.payload,
    )
