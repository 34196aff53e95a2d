"""Markdown results as self-contained HTML pages, for the Snakemake report and for browsers.

A Snakemake report shows HTML results inline and only offers Markdown for download, so every
table is written twice from the same text: `x.md` (for reading in a terminal or on GitHub) and
`x.html` (for the report). The page embeds its style; it loads nothing from the network.
"""

import html
from pathlib import Path

import markdown

from .files import write_text

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.2em; color: #1b1b1b; }
h1 { font-size: 1.3em; }
table { border-collapse: collapse; margin: 1em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #c8c8c8; padding: 0.3em 0.55em; vertical-align: top; }
th { background: #f0f0f0; position: sticky; top: 0; }
tbody tr:nth-child(even) { background: #fafafa; }
td { white-space: nowrap; }
p, li { max-width: 70em; }
"""


def page(markdown_text, title):
    """One HTML document showing `markdown_text` (pipe tables rendered as tables)."""
    body = markdown.markdown(markdown_text, extensions=["tables"], output_format="html")
    if not markdown_text.lstrip().startswith("#"):   # a page names what it shows
        body = f"<h1>{html.escape(title)}</h1>\n{body}"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")


def write_markdown(path, text, title):
    """Write `text` to `path` (.md) and the same content as a page beside it (.html)."""
    path = Path(path)
    write_text(path, text)
    write_text(path.with_suffix(".html"), page(text, title))
