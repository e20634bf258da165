"""docs/language.md: its examples are valid syntax, and it names everything the language has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hydro_rules.lang import exprs, settings
from hydro_rules.lang.diagnostics import Diagnostics
from hydro_rules.lang.grammar import DECL_KEYWORDS
from hydro_rules.lang.parser import parse_text

DOC = Path(__file__).resolve().parents[2] / "docs" / "language.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```hydro\n(.*?)^```$", TEXT, re.M | re.S)


def test_there_are_examples():
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=[f"example{i}" for i in range(len(BLOCKS))])
def test_every_example_parses(block):
    text = block if block.startswith("hydro 1") else "hydro 1\n" + block
    diags = Diagnostics()
    f = parse_text(text, "example.hydro", diags)
    assert f is not None and [(d.code, d.message, d.span.line) for d in diags.items] == []


@pytest.mark.parametrize("path", sorted(settings.SCHEMA))
def test_every_setting_is_described(path):
    assert f"`{path}`" in TEXT


@pytest.mark.parametrize(
    "word",
    sorted(exprs.FUNCTIONS)
    + sorted(exprs.CHANNEL_ATTRS)
    + sorted(exprs.METRIC_ATTRS)
    + sorted(exprs.CHANNEL_WORDS | exprs.ALERT_WORDS | exprs.KNOWN_WORDS | exprs.METRIC_WORDS)
    + [d for d in DECL_KEYWORDS if d != "test"],
)
def test_every_function_attribute_question_and_declaration_is_named(word):
    assert re.search(rf"`[^`\n]*\b{word}\b[^`\n]*`", TEXT), word


def test_every_unit_is_listed():
    from hydro_rules.lang.units import UNITS

    for unit in UNITS:
        assert f"`{unit}`" in TEXT, unit


def test_the_grammar_lexes_exactly_the_units_the_checker_converts():
    """The unit spellings are listed in the grammar (terminal UNIT) and in units.UNITS: one
    missing from UNITS would crash the builder, one missing from the grammar never lexes."""
    from hydro_rules.lang.grammar import grammar_text
    from hydro_rules.lang.units import UNITS

    (alternatives,) = re.findall(r"^UNIT\.\d+: /\(([^)]*)\)", grammar_text(1), re.M)
    # `%` has terminals of its own: PERCENT (`50%`) and PERCENT_SIGN (`unit %`)
    assert {u.replace("\\/", "/") for u in alternatives.split("|")} == set(UNITS) - {"%"}
