from exporter.split import default_sizes, split_products
from vitrine.catalog import Product
from vitrine.preprocess import normalize_title


def _products(n_unique=300, dups=50):
    ps = [Product(str(i), f"Brand Item {i} Blue Shirts") for i in range(n_unique)]
    ps += [Product(str(n_unique + i), f"brand item {i}  blue shirts!") for i in range(dups)]
    return ps


def test_sizes_exact_disjoint_and_complete():
    ps = _products()
    s = split_products(ps, test_size=40, val_size=30, seed=0)
    assert len(s.test) == 40 and len(s.val) == 30
    assert set(s.train) | set(s.val) | set(s.test) == set(range(len(ps)))
    assert not (set(s.train) & set(s.test)) and not (set(s.val) & set(s.test))


def test_same_title_never_crosses_splits():
    ps = _products()
    s = split_products(ps, test_size=40, val_size=30, seed=3)
    where = {}
    for name in ("train", "val", "test"):
        for i in s.part(name):
            where.setdefault(normalize_title(ps[i].title), set()).add(name)
    assert all(len(v) == 1 for v in where.values())
    assert any(
        len([i for i in range(len(ps)) if normalize_title(ps[i].title) == t]) > 1 for t in where
    )


def test_deterministic_and_order_independent():
    ps = _products()
    a = split_products(ps, 40, 30, seed=1)
    b = split_products(ps, 40, 30, seed=1)
    assert a == b
    shuffled = list(reversed(ps))
    c = split_products(shuffled, 40, 30, seed=1)
    assert sorted(shuffled[i].id for i in c.test) == sorted(ps[i].id for i in a.test)
    assert split_products(ps, 40, 30, seed=2).test != a.test


def test_default_sizes():
    assert default_sizes(8010) == (1000, 500)
    assert default_sizes(600) == (90, 60)
