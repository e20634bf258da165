"""docs/diagnostics: one page per diagnostic code, and the examples on them are true.

Each page's example files (fenced as ```hydro NAME) are checked as a rule set next to a
copy of the standard rules (`use "../rules"`); the output must be the page's ```text
block exactly, so a page never shows a message `check` no longer prints.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hydro_rules.commands.check import collect
from hydro_rules.lang import render
from hydro_rules.lang.diagnostics import CODES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "diagnostics"
PAGES = sorted(p for p in DOCS.glob("*.md") if p.name != "README.md")
EXAMPLE = re.compile(r"^```hydro (\S+)\n(.*?)^```$", re.M | re.S)
OUTPUT = re.compile(r"^```text\n(.*?)^```$", re.M | re.S)
MANIFEST = 'hydro 1\nruleset example version "2026.11.1"\nuse "../rules"\n'


def test_every_code_has_a_page_and_every_page_is_a_code():
    assert {p.stem for p in PAGES} == set(CODES)


@pytest.mark.parametrize("code", sorted(CODES))
def test_page_heads_with_the_code_title_and_severity(code):
    severity, title = CODES[code]
    lines = (DOCS / f"{code}.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == f"# {code}: {title}"
    assert lines[2].startswith(f"**Severity:** {severity.value}")
    text = "\n".join(lines)
    for section in ("## What it means", "## Example", "## How to fix it"):
        assert section in text


def test_index_lists_every_code_with_its_title():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for code, (severity, title) in CODES.items():
        assert f"| [{code}]({code}.md) | {severity.value} | {title} |" in index


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_page_example_prints_what_the_page_says(page, rules_copy, monkeypatch):
    text = page.read_text(encoding="utf-8")
    files = EXAMPLE.findall(text)
    if not files:  # HR004 (binary and mis-encoded files) cannot be shown as a text block
        assert page.stem == "HR004"
        return
    d = rules_copy / f"doc-{page.stem}"  # next to rules/, as `use "../rules"` expects
    d.mkdir()
    names = {name for name, _ in files}
    if "ruleset.hydro" not in names:
        (d / "ruleset.hydro").write_text(MANIFEST, encoding="utf-8")
    for name, body in files:
        (d / name).write_text(body, encoding="utf-8")
    monkeypatch.chdir(d)
    infos: list = []
    diags, sources = collect(["."], infos)
    shown = [x for x in diags + infos if x.span.path in names]  # information after the problems, as check prints
    assert page.stem in {x.code for x in shown}
    assert render.to_text(shown, sources).rstrip("\n") + "\n" == OUTPUT.search(text).group(1)
