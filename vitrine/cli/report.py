"""Human-readable tables for evaluation reports and search results (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

METRIC_COLS = ("R@1", "R@5", "R@10", "mAP@10", "nDCG@10")


def print_eval_report(report: dict, console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title=f"Retrieval on the {report['split']} pool ({report['pool_size']} products)")
    t.add_column("models")
    t.add_column("direction")
    t.add_column("rule")
    for c in METRIC_COLS:
        t.add_column(c, justify="right")
    for name, r in report["models"].items():
        rows = [(name, r)]
        if "reranked" in r:
            rr = r["reranked"]
            rows.append((f"{name} + rerank top {rr['candidates']}", rr))
        for label, m_all in rows:
            for direction in ("text_to_image", "image_to_text"):
                for rule in ("strict", "title"):
                    m = m_all[direction][rule]
                    t.add_row(
                        label,
                        direction.replace("_to_", "→"),
                        rule,
                        *(f"{m[c]:.3f}" for c in METRIC_COLS),
                    )
            p = m_all["attribute_precision@10"]
            t.add_row(
                label,
                "attributes→image",
                f"{r['attribute_queries']} queries",
                "",
                "",
                f"P@10 {p:.3f}" if p is not None else "n/a",
                "",
                "",
            )
    console.print(t)
    if "vs_baseline" in report:
        console.print(report["vs_baseline"])


def print_caption_report(report: dict, console: Console | None = None) -> None:
    console = console or Console()
    d = report["decoding"]
    t = Table(
        title=f"Titles on the {report['split']} pool ({report['pool_size']} photos), "
        f"{report['model']}, beam {d['beam']}"
    )
    words = ("gender", "baseColour", "articleType")
    for col in ("method", "BLEU-4", "CIDEr-D", *(f"{w} word" for w in words), "brand"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for name, r in report["titles"].items():
        t.add_row(
            name,
            f"{r['BLEU-4']:.3f}",
            f"{r['CIDEr-D']:.3f}",
            *(f"{r['attribute_words'][w]:.3f}" for w in words),
            f"{r['brand']:.3f}",
        )
    console.print(t)
    h = Table(title="Attributes: accuracy")
    h.add_column("")
    for a in report["head_accuracy"]:
        h.add_column(a, justify="right")
    for label, key in (("heads", "head_accuracy"), ("described", "described_accuracy")):
        row = report.get(key, {})
        h.add_row(label, *(f"{row[a]:.3f}" if row.get(a) is not None else "n/a" for a in row))
    console.print(h)
    console.print({"goals": report["goals"]})
    for e in report["examples"]:
        console.print(
            f"  {e['truth']!r} → {e['generated']!r}  (nearest: {e['nearest_neighbour']!r})"
        )


def print_results(title: str, rows: list[dict], console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title=title)
    for c in ("#", "score", "id", "title", "gender", "colour", "type"):
        t.add_column(c, justify="right" if c in ("#", "score") else "left")
    for i, r in enumerate(rows, 1):
        a = r.get("attributes", {})
        t.add_row(
            str(i),
            f"{r['score']:.3f}",
            r["id"],
            r["title"],
            a.get("gender", ""),
            a.get("baseColour", ""),
            a.get("articleType", ""),
        )
    console.print(t)
