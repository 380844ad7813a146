"""A self-contained HTML report: sections of text, figures (copied next to the page) and
tables, readable offline and easy to share as one folder."""

from __future__ import annotations

import html
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .io import atomic_write_text

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;
border-bottom:1px solid #ddd}figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#555}table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ddd;padding:.2em .5em;text-align:right}th{background:#f4f4f4}
.numbers td:first-child{text-align:left}"""


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)          # paragraphs (plain text)
    figures: list[tuple[Path, str]] = field(default_factory=list)  # (image, caption)
    table: tuple[list[str], list[list]] | None = None      # (header, rows)


def _table(header: list[str], rows: list[list], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f'<table class="{css}"><tr>{head}</tr>{body}</table>'


def write_report(folder: Path, title: str, sections: list[Section],
                 numbers: dict | None = None) -> Path:
    """Write ``folder/index.html``; figures are copied to ``folder/figures``. Returns the page."""
    folder = Path(folder)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style><h1>{html.escape(title)}</h1>"]
    if numbers:
        parts.append(_table(["quantity", "value"], [[k, v] for k, v in numbers.items()], "numbers"))
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [f"<p>{html.escape(p)}</p>" for p in section.text]
        for image, caption in section.figures:
            image = Path(image)
            copied = folder / "figures" / image.name
            if image.resolve() != copied.resolve():
                shutil.copyfile(image, copied)
            parts.append(f"<figure><img src='figures/{html.escape(image.name)}' alt=''>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        if section.table is not None:
            parts.append(_table(*section.table))
    page = folder / "index.html"
    atomic_write_text(page, "\n".join(parts))
    return page
