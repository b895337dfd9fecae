"""The HTML pieces the lifeboat UI pages share: page frame and style, escaping, error blocks, formatting."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from lifeboat.settings import Settings

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem;color:#1f2328;
line-height:1.45;font-size:15px}
h1{font-size:1.4rem;margin:0 0 .75rem} h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
nav{margin-bottom:1rem} nav a{margin-right:1rem}
a{color:#0b5cad} code{font-size:.9em;background:#f3f4f6;padding:0 .25em;border-radius:3px}
table{border-collapse:collapse;width:100%;margin:.5rem 0} th,td{border-bottom:1px solid #d8dee4;
padding:.35rem .5rem;text-align:left;vertical-align:top} th{background:#f6f8fa;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:0 .45em;border-radius:.6em;font-size:.85em;font-weight:600;
white-space:nowrap}
.bad{background:#ffebe9;color:#a40e26} .good{background:#dafbe1;color:#116329}
.neutral{background:#eaeef2;color:#424a53} .warn{background:#fff8c5;color:#7d4e00}
.muted{color:#59636e} .error{border:1px solid #ff8182;background:#ffebe9;padding:.75rem 1rem;
border-radius:6px;max-width:60rem} .error pre{white-space:pre-wrap;margin:.5rem 0 0}
.cards{display:flex;flex-wrap:wrap;gap:1rem} .card{border:1px solid #d8dee4;border-radius:6px;
padding:.75rem 1rem;min-width:18rem;flex:1 1 18rem;max-width:36rem} .card h2{margin-top:0}
p.datasets a{margin-right:.6rem} p.datasets a.current{font-weight:600;color:#1f2328}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:0} dt{color:#59636e}
dd{margin:0} ul.reasons{margin:0;padding-left:1.1rem}
"""


def escape(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def dataset_query(settings: Settings | None) -> str:
    """``?dataset=<name>`` for links that must stay on the page's dataset ("" without settings)."""
    return "" if settings is None else f"?dataset={quote(settings.dataset, safe='')}"


def dataset_selector(settings: Settings) -> str:
    """Links to the same page for every known dataset, the current one marked."""
    links = [
        f'<a class="current" href="?dataset={quote(name, safe="")}">{escape(name)}</a>'
        if name == settings.dataset
        else f'<a href="?dataset={quote(name, safe="")}">{escape(name)}</a>'
        for name in settings.known_datasets() or [settings.dataset]
    ]
    return f'<p class="datasets">Dataset: {" ".join(links)}</p>'


def page(title: str, body: str, root: str = "", settings: Settings | None = None) -> str:
    """A complete HTML page; ``root`` is the relative path from the page to the app root ("" or "../").

    With ``settings``, the page is about its dataset: the navigation keeps it and a selector switches it.
    """
    query = dataset_query(settings)
    nav = (
        f'<nav><a href="{root}monitoring{query}">Monitoring</a><a href="{root}models{query}">Models</a>'
        f'<a href="{root or "./"}{query}">lifeboat</a></nav>'
    )
    if settings is not None:
        body = dataset_selector(settings) + body
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} - lifeboat</title><style>{STYLE}</style></head>\n"
        f"<body>{nav}\n{body}\n</body></html>\n"
    )


def error_block(heading: str, detail: str, hint: str = "") -> str:
    """An error box: ``heading`` and ``detail`` are escaped, ``hint`` is markup written in this module."""
    hint_html = f"<p>{hint}</p>" if hint else ""
    heading_html = f"<strong>{escape(heading)}</strong>"
    return f'<div class="error">{heading_html}<pre>{escape(detail)}</pre>{hint_html}</div>'


def format_time(raw: object) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM:SS UTC`` (the raw text when it does not parse)."""
    if not raw:
        return ""
    try:
        moment = datetime.fromisoformat(str(raw))
    except ValueError:
        return str(raw)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.tzinfo is not None else "")


def sort_key(entry: Mapping[str, Any]) -> float:
    try:
        moment = datetime.fromisoformat(str(entry.get("created_at")))
    except ValueError:
        return -math.inf
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def format_number(value: object, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}"
