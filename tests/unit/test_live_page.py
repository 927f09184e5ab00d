"""The live page as a package resource: self-contained, well-formed, wired to the routes.

The browser test (tests/integration/test_live_page.py) shows that it renders;
these checks need no browser and no worker.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from fintank.web import live_page

# The SVG namespace is an identifier that createElementNS needs, never fetched.
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
VOID = {"meta", "link", "br", "hr", "img", "input", "source", "wbr", "area", "base", "col"}


class TagChecker(HTMLParser):
    """Collects ids and the problems of a document: unclosed or stray tags."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.problems: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids += [value or "" for name, value in attrs if name == "id"]
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()


def page_text() -> str:
    return live_page().decode("utf-8")


def test_the_page_loads_from_the_package_once() -> None:
    assert live_page().lstrip().lower().startswith(b"<!doctype html>")
    assert live_page() is live_page()


def test_the_page_references_nothing_outside_itself() -> None:
    text = page_text().replace(SVG_NAMESPACE, "")
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"\b(src|href)\s*=", text), "no scripts, styles or images to load"
    assert "@import" not in text and "url(" not in text
    assert "<script>" in text and "<style>" in text  # inline, no build step


def test_the_page_is_well_formed_with_unique_ids() -> None:
    checker = TagChecker()
    checker.feed(page_text())
    checker.close()
    assert checker.problems == []
    assert checker.open == []
    assert len(checker.ids) == len(set(checker.ids))
    for element in (
        "instruments",
        "chart",
        "executions",
        "fills",
        "signals",
        "alerts",
        "worker",
        "status",
    ):
        assert element in checker.ids


def test_the_page_polls_the_worker_routes() -> None:
    text = page_text()
    for route in ('"/instruments"', "`/candles/${", '"/recent"', '"/metrics"'):
        assert route in text
    assert "interval=${interval}&minutes=${MINUTES[interval]}" in text
    assert '"1s": 10' in text and '"1m": 60' in text  # the two views: 10 min of 1s, 60 of 1m
    for key in ("executions", "fills", "signals", "alerts"):
        assert f'"{key}"' in text
    # This worker's throughput and lag, from the metrics GET /metrics serves.
    assert "fintank_records_in_total|fintank_consumer_lag_records" in text
