"""The comparison report (report.html) as a person sees it, in headless Chromium
(tests/browser.py): the verdict banner keeps its strong colour, while every text of the page, the
product rows, their verdicts and the metrics toggles among them, has a contrast of at least 4.5:1
(WCAG AA) against what it is drawn on. Rendered from realistic verdicts, so nothing needs the
testbed. The screenshots are kept under tmp_path, and in $LOFAR_DATALAKE_SCREENSHOTS if set.
A missing browser fails these tests: the project checks its pages in a real browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import Browser, BrowserMissing, Colour, Text
from report_verdicts import realistic_verdict

from lofar_datalake.compare.html import render
from lofar_datalake.compare.verdict import Verdict

AA = 4.5  # WCAG AA, body text
# The verdict of the whole: the banner's word and background.
BANNERS = {
    True: ("EQUIVALENT", Colour(0x1E, 0x7D, 0x32)),
    False: ("NOT EQUIVALENT", Colour(0xB7, 0x1C, 0x1C)),
    None: ("NO VERDICT", Colour(0x61, 0x61, 0x61)),
}
PRODUCTS = "body > table:first-of-type"  # the products table, the first of the page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    opened, missing = Browser(width=1280, height=900), ""
    try:
        opened.__enter__()
    except BrowserMissing as exc:
        missing = str(exc)
    if missing:  # failed, not skipped: the project checks its pages in a real browser
        pytest.fail(f"{missing}; the report's page test needs a real browser", pytrace=False)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(params=[True, False, None], ids=["equivalent", "not-equivalent", "no-verdict"])
def report(request: pytest.FixtureRequest, browser: Browser, tmp_path: Path) -> dict:
    """The report of a realistic verdict, open in the browser; its screenshot saved."""
    data = realistic_verdict(request.param)
    out = tmp_path / "report.html"
    render(Verdict.from_json(data), {}, out)
    browser.open(out)
    browser.screenshot(tmp_path / f"report-{request.node.callspec.id}.png")
    return data


def _assert_readable(texts: list[Text]) -> None:
    unreadable = [str(t) for t in texts if t.contrast < AA]
    assert not unreadable, f"text under {AA}:1 contrast:\n" + "\n".join(unreadable)


def _open_metrics(browser: Browser, name: str, tmp_path: Path) -> None:
    browser.page.evaluate("document.querySelectorAll('details').forEach((d) => d.open = true)")
    browser.screenshot(tmp_path / f"report-{name}-metrics-open.png")


def test_the_browser_runs_sandboxed(browser: Browser) -> None:
    assert browser.sandboxed()


def test_the_banner_keeps_its_strong_colour(report: dict, browser: Browser) -> None:
    word, colour = BANNERS[report["equivalent"]]
    assert browser.backgrounds(".banner") == [colour]
    texts = browser.texts(".banner, .banner *")
    assert word in [t.text for t in texts]
    _assert_readable(texts)


@pytest.mark.parametrize("report", [True, False], ids=["equivalent", "not-equivalent"],
                         indirect=True)  # those with products
def test_product_rows_and_metrics_toggles_read_at_aa_contrast(
    report: dict, browser: Browser, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    products = report["products"]
    assert products
    texts = browser.texts(f"{PRODUCTS} td, {PRODUCTS} td *")
    for p in products:  # each product's row is there, its path and verdict drawn
        assert p["path"] in [t.text for t in texts], p["path"]
    verdicts = [t.text for t in texts if t.text in ("equivalent", "differs", "ignored")]
    assert len(verdicts) == len(products)
    toggles = browser.texts(f"{PRODUCTS} summary")
    assert len(toggles) == sum(1 for p in products if p["metrics"])
    _assert_readable(texts + toggles)
    _open_metrics(browser, request.node.callspec.id, tmp_path)
    _assert_readable(browser.texts(f"{PRODUCTS} details *"))


def test_every_text_of_the_report_reads_at_aa_contrast(
    report: dict, browser: Browser, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    closed = browser.texts()
    assert len(closed) > 50  # the whole page, not an empty one
    _open_metrics(browser, request.node.callspec.id, tmp_path)
    _assert_readable(closed + browser.texts())
