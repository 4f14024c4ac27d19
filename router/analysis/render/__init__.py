"""Report rendering: one pure :class:`ReportData` (built by :func:`build_report`) rendered as
Markdown, self-contained HTML with plots, JSON or CSV. ``slm-router report`` is the CLI edge.
"""

from __future__ import annotations

from .data import ReportData, build_report

__all__ = ["ReportData", "build_report", "render", "FORMATS"]

FORMATS = ("md", "html", "json", "csv")


def render(data: ReportData, fmt: str) -> str:
    """The report as text in ``fmt`` (one of :data:`FORMATS`).

    Raises:
        ValueError: unknown format.
    """
    if fmt == "md":
        from .markdown import to_markdown

        return to_markdown(data)
    if fmt == "html":
        from .html import to_html

        return to_html(data)
    if fmt == "json":
        from .tabular import to_json

        return to_json(data)
    if fmt == "csv":
        from .tabular import to_csv

        return to_csv(data)
    raise ValueError(f"unknown report format {fmt!r}; use one of: {', '.join(FORMATS)}")
