"""Diagnostics for people (with the source line and a caret), for CI (JSON) and GitHub."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape

from .diagnostics import Diagnostic, Severity

DOCS_URL = "docs/diagnostics/{code}.md"


def _line_cache(sources: dict[str, str]):
    """The lines of a source by path, split once however many diagnostics point into it."""
    cache: dict[str, list[str] | None] = {}

    def lines(path: str) -> list[str] | None:
        if path not in cache:
            source = sources.get(path)
            cache[path] = source.split("\n") if source is not None else None
        return cache[path]

    return lines


def excerpt(d: Diagnostic, lines: list[str] | None) -> list[str]:
    """The source line of a diagnostic with carets under the span, as plain lines."""
    s = d.span
    if lines is None or not 1 <= s.line <= len(lines):
        return []
    text = lines[s.line - 1].replace("\t", " ")
    if not text.strip():  # an empty file or line: nothing worth showing
        return []
    if len(text) > 200:
        start = max(0, s.column - 80)
        text = ("…" if start else "") + text[start : start + 160] + "…"
        col = s.column - start + (1 if start else 0)
    else:
        col = s.column
    end = s.end_column if s.end_line == s.line and s.end_column > s.column else col + 1
    width = max(1, min(end - s.column, len(text) - col + 2))
    num = str(s.line)
    pad = " " * len(num)
    return [f"{pad} |", f"{num} | {text}", f"{pad} | " + " " * (col - 1) + "^" * width]


def to_human(diags: list[Diagnostic], sources: dict[str, str], console: Console) -> None:
    lines_of = _line_cache(sources)
    for d in diags:
        color = {Severity.ERROR: "red", Severity.WARNING: "yellow"}.get(d.severity, "cyan")
        console.print(f"[bold {color}]{d.severity.value}[{d.code}][/]: [bold]{escape(d.message)}[/]", highlight=False)
        console.print(f"  [blue]-->[/] {escape(str(d.span))}", highlight=False)
        lines = excerpt(d, lines_of(d.span.path))
        for i, line in enumerate(lines):
            style = "blue" if i != 2 else color
            if i == 1:
                head, _, rest = line.partition("| ")
                console.print(f"[blue]{escape(head)}|[/] {escape(rest)}", highlight=False)
            else:
                console.print(f"[{style}]{escape(line)}[/]", highlight=False)
        if d.hint:
            console.print(f"  [green]= help:[/] {escape(d.hint)}", highlight=False)
        console.print(f"  [dim]= see {DOCS_URL.format(code=d.code)}[/]", highlight=False)
        console.print()


def to_text(diags: list[Diagnostic], sources: dict[str, str]) -> str:
    """The human format without colours (golden tests, logs)."""
    out = []
    lines_of = _line_cache(sources)
    for d in diags:
        out.append(f"{d.severity.value}[{d.code}]: {d.message}")
        out.append(f"  --> {d.span}")
        out.extend(excerpt(d, lines_of(d.span.path)))
        if d.hint:
            out.append(f"  = help: {d.hint}")
        out.append("")
    return "\n".join(out)


def to_json(diags: list[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diags], indent=2, ensure_ascii=False)


def _gh_escape(s: str, prop: bool = False) -> str:
    s = s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        s = s.replace(":", "%3A").replace(",", "%2C")
    return s


def to_github(diags: list[Diagnostic]) -> str:
    """GitHub Actions workflow commands: one annotation per diagnostic."""
    out = []
    for d in diags:
        s = d.span
        kind = {Severity.ERROR: "error", Severity.WARNING: "warning"}.get(d.severity, "notice")
        props = (
            f"file={_gh_escape(s.path, True)},line={s.line},col={s.column},"
            f"endLine={s.end_line},endColumn={s.end_column},title={d.code}"
        )
        out.append(f"::{kind} {props}::{_gh_escape(d.full_message)}")
    return "\n".join(out)
