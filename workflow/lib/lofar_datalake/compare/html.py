"""The comparison report: one self-contained HTML file (inline CSS, figures as base64 PNG, no
JavaScript, nothing fetched). Every string taken from the verdict is HTML-escaped.
Colours: the verdict banner's strong backgrounds are its own classes (banner-*), never a product
row's: a row has at most a light tint and its verdict a badge (status-*), so every text keeps a
contrast of at least 4.5:1 (WCAG AA) to what it is drawn on, as the browser test checks
(tests/integration/test_report_in_browser.py, in headless Chromium)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .rules import Rule
from .verdict import RunSummary, Stage, Verdict

if TYPE_CHECKING:
    from .equivalence import ProductResult

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
.banner { padding: 1em 1.5em; border-radius: 6px; color: #fff; }
.banner .word { font-size: 2.2em; font-weight: 700; letter-spacing: .04em; }
.banner-ok { background: #1e7d32; } .banner-bad { background: #b71c1c; }
.banner-unknown { background: #616161; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.row-differs td { background: #fdecea; } tr.row-ignored td { color: #666; }
code, .path { font-family: ui-monospace, monospace; font-size: .92em; word-break: break-all; }
.status { display: inline-block; padding: 0 .5em; border-radius: 3px; font-weight: 700; }
.status-ok { background: #e8f5e9; color: #1b5e20; }
.status-differs { background: #b71c1c; color: #fff; }
.status-ignored { background: #eee; color: #555; }
details summary { cursor: pointer; color: #555; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #444; margin-top: .3em; } .muted { color: #666; }
"""

# What each figure of `lofar-datalake compare` shows, by the start of its name.
CAPTIONS = {
    "Wall time per stage": "Wall time of each workflow rule (all its jobs), the two runs side "
    "by side. Staging of DataLake inputs happens before and between the rules.",
    "Staging timeline": "When each input file was made local, per run; time since that run's "
    "first staging started. Labels give the size and how the file was made local.",
    "Image difference": "Reference image, candidate image and their difference (candidate − "
    "reference) on a symmetric colour scale.",
    "Catalogue fluxes": "Total flux of the sources matched by position in both catalogues, and "
    "their relative difference; unmatched sources are counted in the legend.",
}

_esc = html.escape


def _num(value: object, digits: int = 3) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.{digits}g}" if abs(value) < 1e6 else f"{value:.{digits}e}"
    return _esc(str(value))


def _bytes(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return _num(value)
    return f"{value / 2**20:,.1f} MiB ({int(value):,} B)"


def _verdict_class(product: ProductResult) -> str:
    if product.method == "ignore":
        return "ignored"
    return "ok" if product.equivalent else "differs"


def _banner(verdict: Verdict, products: list[ProductResult]) -> str:
    classes = [_verdict_class(p) for p in products]
    counts = {k: classes.count(k) for k in ("ok", "differs", "ignored")}
    equivalent = verdict.equivalent
    if equivalent is True:
        word, css = "EQUIVALENT", "banner-ok"
    elif equivalent is False:
        word, css = "NOT EQUIVALENT", "banner-bad"
    else:  # the runs failed before there was anything to compare
        word, css = "NO VERDICT", "banner-unknown"
    detail = (
        f"{len(products)} products: {counts['ok']} equivalent, {counts['differs']} differ, "
        f"{counts['ignored']} not compared (ignored by rule)"
    )
    return (
        f'<div class="banner {css}"><div class="word">{word}</div><div>{_esc(detail)}</div>'
        f"<div>created {_esc(verdict.created or '—')}</div></div>"
    )


def _metrics(metrics: object) -> str:
    if not isinstance(metrics, dict) or not metrics:
        return ""
    rows = "".join(
        f"<tr><td>{_esc(str(k))}</td><td class=num>{_num(v, 4)}</td></tr>"
        for k, v in metrics.items()
    )
    return f"<details><summary>metrics</summary><table>{rows}</table></details>"


def _products_table(products: list[ProductResult]) -> str:
    if not products:
        return "<p class=muted>No products were compared.</p>"
    order = {"differs": 0, "ok": 1, "ignored": 2}
    rows = []
    for p in sorted(products, key=lambda p: (order[_verdict_class(p)], p.path)):
        kind = _verdict_class(p)
        word = {"differs": "differs", "ok": "equivalent", "ignored": "ignored"}[kind]
        rows.append(
            f'<tr class="row-{kind}"><td class=path>{_esc(p.path)}</td>'
            f'<td>{_esc(p.method)}</td><td><span class="status status-{kind}">{word}</span></td>'
            f"<td>{_esc(p.summary)}{_metrics(p.metrics)}</td></tr>"
        )
    head = "<tr><th>product</th><th>method</th><th>verdict</th><th>evidence</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _tolerance_table(tolerances: list[Rule]) -> str:
    if not tolerances:
        return "<p class=muted>No tolerance rules recorded.</p>"
    rows = []
    for i, rule in enumerate(tolerances):
        shown = ", ".join(f"{k} = {v}" for k, v in rule.params.items())
        rows.append(
            f"<tr><td class=num>{i}</td><td class=path>{_esc(rule.pattern)}</td>"
            f"<td>{_esc(rule.method)}</td><td>{_esc(shown)}</td></tr>"
        )
    head = "<tr><th>#</th><th>pattern (first match wins)</th><th>method</th><th>params</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _secs(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return _num(value)
    return f"{value:,.1f} s"


def _stage(stage: object) -> str:
    """One rule's wall time and its number of jobs."""
    if not isinstance(stage, Stage):
        return _num(stage)
    return _secs(stage.wall_s) + f" ({_num(stage.jobs)} jobs)"


def _copy(key: str) -> Callable[[RunSummary], object]:
    return lambda r: (r.copy or {}).get(key)


# (row label, what of a run, formatter); ratio of the two runs where both are numbers.
RUN_ROWS: list[tuple[str, Callable[[RunSummary], object], Callable[[object], str]]] = [
    ("exit code", lambda r: r.exit_code, _num),
    ("wall time of the run", lambda r: r.wall_s, _secs),
    ("staging: wall time", lambda r: r.staging.wall_s, _secs),
    ("staging: files", lambda r: r.staging.files, _num),
    ("staging: bytes moved", lambda r: r.staging.bytes, _bytes),
    ("staging: bytes counted from", lambda r: r.staging.bytes_source, _num),
    ("local copy: wall time", _copy("wall_s"), _secs),
    ("local copy: files", _copy("files"), _num),
    ("local copy: bytes", _copy("bytes"), _bytes),
    ("Rucio requests", lambda r: r.requests.rucio, _num),
    ("FTS jobs", lambda r: r.requests.fts_jobs, _num),
    ("Rucio rules", lambda r: r.requests.rucio_rules, _num),
]


def _ratio(a: object, b: object) -> str:
    if isinstance(a, Stage) and isinstance(b, Stage):  # a stage: compare wall times
        a, b = a.wall_s, b.wall_s
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    if not numbers or not b:
        return "—"
    return f"{a / b:.2f}×"  # type: ignore[operator]


def _stage_of(rule: str) -> Callable[[RunSummary], object]:
    return lambda r: r.stages.get(rule)


def _runs_table(runs: dict[str, RunSummary]) -> str:
    dl = runs.get("datalake") or RunSummary("DataLake")
    local = runs.get("local") or RunSummary("local copy")
    rows = list(RUN_ROWS)
    stages = sorted({*dl.stages, *local.stages})
    rows += [(f"rule {rule}", _stage_of(rule), _stage) for rule in stages]
    body = []
    for label, what, fmt in rows:
        a, b = what(dl), what(local)
        if a is None and b is None:
            continue
        body.append(
            f"<tr><th>{_esc(label)}</th><td class=num>{fmt(a)}</td><td class=num>{fmt(b)}</td>"
            f"<td class=num>{_ratio(a, b)}</td></tr>"
        )
    names = [_esc(r.label) for r in (dl, local)]
    head = (
        f"<tr><th></th><th>{names[0]}</th><th>{names[1]}</th>"
        f"<th>ratio {names[0]} / {names[1]}</th></tr>"
    )
    workdirs = "".join(
        f"<li>{n}: <code>{_esc(r.workdir or '—')}</code></li>"
        for n, r in zip(names, (dl, local), strict=True)
    )
    return f"<table>{head}{''.join(body)}</table><p>Working directories:</p><ul>{workdirs}</ul>"


def _workflow(workflow: object) -> str:
    if not isinstance(workflow, dict) or not workflow:
        return ""
    items = []
    for key, value in workflow.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        items.append(f"<li>{_esc(str(key))}: <code>{_esc(str(shown))}</code></li>")
    return f"<h2>Workflow</h2><ul>{''.join(items)}</ul>"


def _site(site: object) -> str:
    """Where the runs ran: the site, its executor, the images by digest, each job's place."""
    if not isinstance(site, dict) or not site:
        return ""
    parts = ["<h2>Site</h2>"]
    for label, run in site.items():
        if not isinstance(run, dict):
            continue
        images = "".join(
            f"<li>{_esc(str(i.get('family')))}: <code>{_esc(str(i.get('reference')))}</code> "
            f"<code>{_esc(str(i.get('digest') or 'no digest'))}</code></li>"
            for i in run.get("images") or [])
        jobs = run.get("jobs") or []
        keys = list(jobs[0]) if jobs else []
        head = "".join(f"<th>{_esc(k)}</th>" for k in keys)
        rows = "".join("<tr>" + "".join(f"<td>{_esc(str(j.get(k)))}</td>" for k in keys)
                       + "</tr>" for j in jobs)
        parts.append(
            f"<h3>{_esc(label)} run</h3><p>site <b>{_esc(str(run.get('site')))}</b> (storage "
            f"{_esc(str(run.get('rse')))}), executor <b>{_esc(str(run.get('executor')))}</b>, "
            f"profile <code>{_esc(str(run.get('profile')))}</code></p>"
            + (f"<p>Images:</p><ul>{images}</ul>" if images else
               "<p class=muted>No containers: the site's shared software ran the jobs.</p>")
            + (f"<p>{len(jobs)} batch jobs:</p><table><tr>{head}</tr>{rows}</table>"
               if jobs else ""))
    return "".join(parts)


def _chain(chain: object) -> str:
    """The DataLake side as a chain: which site ran which stage, and what its figures mean."""
    if not isinstance(chain, dict):
        return ""
    runs = [r for r in chain.get("runs") or [] if isinstance(r, dict)]
    sites = list(dict.fromkeys(str(r.get("site")) for r in runs))
    rows = "".join(
        f"<tr><td>{_esc(str(r.get('site')))}</td><td>{_esc(str(r.get('stage')))}</td>"
        f"<td>{_esc(str(r.get('rse')))}</td>"
        f"<td>{_esc(', '.join(map(str, r.get('subbands') or [])) or 'every subband')}</td>"
        f"<td class=num>{_secs(r.get('wall_s'))}</td><td class=num>{_num(r.get('exit_code'))}"
        f"</td><td class=path>{_esc(str(r.get('directory')))}</td></tr>" for r in runs)
    head = ("<tr><th>site</th><th>stage</th><th>RSE</th><th>subbands</th><th>wall time</th>"
            "<th>exit code</th><th>run directory</th></tr>")
    return (
        f"<h2>DataLake side: a chain across {len(sites)} sites</h2>"
        f"<p>The DataLake side is the chain <code>{_esc(str(chain.get('name')))}</code> "
        f"(record <code>{_esc(str(chain.get('record')))}</code>), run by "
        f"<code>lofar-datalake run --plan</code> at {_esc(', '.join(sites))}: each site "
        "preprocessed its subbands, then one site calibrated and imaged them. Its products "
        "are the chain's assembled results; its wall time is the chain's makespan "
        f"({_secs(chain.get('makespan_s'))}; its runs took {_secs(chain.get('runs_wall_s'))} "
        "together); its staging and rule times are those of all its runs, its bytes moved "
        "the chain's own count (a subband preprocessed at another site's RSE counts as moved "
        "to the processing site, however it came). The "
        "local-copy side is one run of the whole chain at one site on a local copy of the "
        f"chain's {_num(chain.get('inputs'))} raw inputs.</p>"
        f"<table>{head}{rows}</table>")


def _figures(figures: dict[str, Path]) -> str:
    parts = []
    for name, path in figures.items():
        caption = next((text for start, text in CAPTIONS.items() if name.startswith(start)), "")
        try:
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        except OSError as exc:
            parts.append(f"<p class=muted>{_esc(name)}: figure not available ({_esc(str(exc))})")
            continue
        parts.append(
            f'<figure><img alt="{_esc(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{_esc(name)}.</b> {_esc(caption)}</figcaption></figure>"
        )
    return "".join(parts) or "<p class=muted>No figures.</p>"


def render(verdict: Verdict, figures: dict[str, Path], out: Path) -> None:
    """Write the report of one comparison to `out`."""
    products, notes = verdict.products, verdict.notes
    sections = [
        _banner(verdict, products),
        "<h2>Products</h2>",
        _products_table(products),
        "<h2>Tolerances</h2>",
        _tolerance_table(verdict.tolerances),
        "<h2>Runs</h2>",
        _runs_table(verdict.runs),
        _chain(verdict.chain),
        _workflow(verdict.workflow),
        _site(verdict.site),
        "<h2>Figures</h2>",
        _figures(figures),
    ]
    if notes:
        sections.append(
            "<h2>Notes</h2><ul>" + "".join(f"<li>{_esc(str(n))}</li>" for n in notes) + "</ul>"
        )
    side = "DataLake chain across sites" if verdict.chain is not None else "DataLake run"
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>lofar-datalake compare</title>"
        f"<style>{CSS}</style></head><body><h1>{side} vs local-copy run</h1>"
        + "".join(sections)
        + "</body></html>\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
