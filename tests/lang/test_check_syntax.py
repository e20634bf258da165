"""Files and syntax: HR001-HR006, and syntax errors worded for people who do not program."""

from __future__ import annotations

import pytest

from hydro_rules.commands.check import collect
from hydro_rules.lang import render
from hydro_rules.lang.builder import MAX_EXPR_DEPTH
from hydro_rules.lang.parser import MAX_FILE_BYTES, MAX_NESTING


def test_valid_inputs_are_clean(sets):
    assert sets.found({"alerts.hydro": sets.ALERT, "top_up.hydro": sets.MACHINE}) == []


# ---- HR001 header ---------------------------------------------------------------------
def test_hr001_missing_header(sets):
    text = sets.ALERT.removeprefix("hydro 1\n\n")
    assert sets.found({"a.hydro": text}) == [("HR001", "a.hydro", 1, 1)]


def test_hr001_empty_file_says_it_is_empty(sets):
    (d,) = sets.check({"a.hydro": ""})
    assert (d.code, d.span.line, d.span.column) == ("HR001", 1, 1)
    assert "empty" in d.message


def test_hr001_header_below_a_comment_points_at_it(sets):
    (d,) = sets.check({"a.hydro": "# basil zone\n" + sets.ALERT})
    assert (d.code, d.span.line, d.span.column) == ("HR001", 2, 1)
    assert "first line" in d.message and "hydro 1" in d.hint


def test_hr001_capitalised_header(sets):
    (d,) = sets.check({"a.hydro": "Hydro 1\n" + sets.ALERT.removeprefix("hydro 1\n")})
    assert (d.code, d.span.line) == ("HR001", 1)
    assert "`hydro 1.2`" in d.message


# ---- HR002 version --------------------------------------------------------------------
def test_hr002_unsupported_version_names_the_supported_ones(sets):
    (d,) = sets.check({"a.hydro": sets.replace(sets.ALERT, "hydro 1", "hydro 2")})
    assert (d.code, d.span.line, d.span.column, d.span.end_column) == ("HR002", 1, 7, 8)
    assert "supported versions: 1, 1.1" in d.message


def test_hr002_version_written_as_decimal_gets_the_right_spelling(sets):
    (d,) = sets.check({"a.hydro": sets.replace(sets.ALERT, "hydro 1", "hydro 1.0")})
    assert d.code == "HR002" and d.hint == "write `hydro 1`"
    (d,) = sets.check({"a.hydro": sets.replace(sets.ALERT, "hydro 1", "hydro v1.1")})
    assert d.code == "HR002" and d.hint == "write `hydro 1.1`"
    (d,) = sets.check({"a.hydro": sets.replace(sets.ALERT, "hydro 1", "hydro 1.3")})
    assert d.code == "HR002" and "a newer file needs a newer hydro-rules" in d.hint


def test_hydro_1_1_header_is_read(sets):
    assert sets.check({"a.hydro": sets.replace(sets.ALERT, "hydro 1", "hydro 1.1")}) == []


# ---- HR003 syntax ---------------------------------------------------------------------
def test_hr003_keyword_typo_says_did_you_mean_and_nothing_about_tokens(sets):
    (d,) = sets.check({"a.hydro": sets.replace(sets.ALERT, "26 °C for 15m", "26 °C fo 15m")})
    assert (d.code, d.span.line, d.span.column, d.span.end_column) == ("HR003", 7, 27, 29)
    assert d.message == "unexpected name `fo`"
    assert d.hint == "did you mean `for`?"


def test_hr003_upper_case_keyword(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when temp_water > 26 °C AND ph > 6")
    (d,) = sets.check({"a.hydro": text})
    assert (d.code, d.span.line, d.span.column) == ("HR003", 7, 27)
    assert d.hint == "did you mean `and`?"


def test_hr003_expected_list_is_short_and_only_what_can_come_there(sets):
    (d,) = sets.check({"a.hydro": sets.replace(sets.ALERT, "26 °C for 15m", "26 °C xyz 15m")})
    assert d.code == "HR003" and d.span.line == 7
    # after a complete comparison: more of the condition, its hold, or the alert's next item
    assert d.message == (
        "unexpected name `xyz`: expected `and`, `for`, `or`, an operator, an item such as `source`, `severity`, "
        "`text` or `}`"
    )
    assert "`)`" not in d.message and "`,`" not in d.message  # LALR lookaheads that cannot occur here


def test_hr003_hold_without_unit(sets):
    (d,) = sets.check({"a.hydro": sets.replace(sets.ALERT, "26 °C for 15m", "26 °C for 15")})
    assert (d.code, d.span.line, d.span.column) == ("HR003", 7, 31)
    assert "needs a unit" in d.message and "`15m`" in d.hint


@pytest.mark.parametrize(
    "old, new, line, col, hint",
    [
        ('text "Nutrient solution too warm"', "text 'Nutrient solution too warm'", 6, 8, "double quotes"),
        ('text "Nutrient solution too warm"', "text “Nutrient solution too warm”", 6, 8, "straight double quotes"),
        ("when temp_water > 26", "when temp_water = 26", 7, 19, "`==`"),
        ("when temp_water > 26", "when temp_water ≥ 26", 7, 19, "`>=`"),
        ("source biz", "source: biz", 4, 9, "write `source biz`"),
        ("26 °C for 15m", "26 °C && ph > 6 for 15m", 7, 27, "write `and`"),
    ],
)
def test_hr003_characters_from_other_languages_get_a_hint(sets, old, new, line, col, hint):
    (d,) = sets.check({"a.hydro": sets.replace(sets.ALERT, old, new)})
    assert (d.code, d.span.line, d.span.column) == ("HR003", line, col)
    assert d.message.startswith("unexpected character")
    assert hint in d.hint


def test_hr003_decimal_comma(sets):
    (d,) = sets.check({"a.hydro": sets.replace(sets.ALERT, "> 26 °C", "> 26,5 °C")})
    assert (d.code, d.span.line, d.span.column) == ("HR003", 7, 23)
    assert d.hint == "decimals are written with a point: `26.5`"


def test_hr003_unclosed_block_points_at_its_opening_brace(sets):
    text = (
        sets.replace(sets.ALERT, "for 15m\n}\n", "for 15m\n")
        + "\n"
        + sets.ALERT.removeprefix("hydro 1\n").replace("warm", "hot")
    )
    (d,) = sets.check({"a.hydro": text})
    assert (d.code, d.span.line, d.span.column) == ("HR003", 3, 25)
    assert "never closed" in d.message


def test_hr003_extra_closing_brace(sets):
    (d,) = sets.check({"a.hydro": sets.ALERT + "}\n"})
    assert (d.code, d.span.line, d.span.column) == ("HR003", 10, 1)
    assert "no open `{`" in d.message


def test_hr003_unterminated_text(sets):
    (d,) = sets.check(
        {"a.hydro": sets.replace(sets.ALERT, '"Nutrient solution too warm"', '"Nutrient solution too warm')}
    )
    assert (d.code, d.span.line, d.span.column) == ("HR003", 6, 8)
    assert "not closed" in d.message


def test_hr003_every_broken_declaration_is_reported(sets):
    second = sets.ALERT.removeprefix("hydro 1\n").replace("warm", "hot")
    third = second.replace("hot", "cold")
    text = (
        sets.replace(sets.ALERT, "26 °C for 15m", "26 °C fo 15m")
        + sets.replace(second, "26 °C for 15m", "26 °C for 15")
        + sets.replace(third, "source biz", "source: biz")
    )
    found = sets.found({"a.hydro": text})
    assert found == [("HR003", "a.hydro", 7, 27), ("HR003", "a.hydro", 15, 31), ("HR003", "a.hydro", 20, 9)]


def test_hr003_a_broken_declaration_does_not_hide_errors_in_the_others(sets):
    good_but_wrong = (
        sets.ALERT.removeprefix("hydro 1\n").replace("warm", "hot").replace("temp_water < 24", "temp_watr < 24")
    )
    text = sets.replace(sets.ALERT, "26 °C for 15m", "26 °C fo 15m") + good_but_wrong
    assert [c for c, *_ in sets.found({"a.hydro": text})] == ["HR003", "HR101"]


def test_hr003_names_of_broken_declarations_are_not_reported_unknown(sets):
    broken_alert = sets.replace(sets.ALERT, "26 °C for 15m", "26 °C fo 15m")
    uses_it = sets.replace(
        sets.MACHINE,
        "go TOP_UP_FILL when water_level < levels.min",
        "go TOP_UP_FILL when biz_warm_solution is resolved",
    )
    found = sets.found({"a.hydro": broken_alert, "b.hydro": uses_it})
    assert found == [("HR003", "a.hydro", 7, 27)]


# ---- HR004 unreadable files -----------------------------------------------------------
def test_hr004_binary_data(sets):
    (d,) = sets.check({"a.hydro": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"})
    assert (d.code, d.span.line, d.span.column) == ("HR004", 1, 1)
    assert "binary" in d.message


def test_hr004_invalid_utf8_points_at_the_byte(sets):
    (d,) = sets.check({"a.hydro": sets.ALERT.encode("latin-1", "replace").replace(b"?", b"\xb0")})
    assert (d.code, d.span.line, d.span.column) == ("HR004", 7, 24)
    assert "UTF-8" in d.message and "°" in d.message


def test_hr004_utf16(sets):
    (d,) = sets.check({"a.hydro": sets.ALERT.encode("utf-16")})
    assert d.code == "HR004" and "UTF-16" in d.message


def test_hr004_file_too_large(sets):
    big = sets.ALERT + "#" * (MAX_FILE_BYTES + 1)
    (d,) = sets.check({"a.hydro": big})
    assert (d.code, d.span.line) == ("HR004", 1)
    assert "MB" in d.message


def test_valid_utf8_with_bom_and_crlf_is_clean(sets):
    assert sets.found({"a.hydro": b"\xef\xbb\xbf" + sets.ALERT.replace("\n", "\r\n").encode()}) == []


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_excerpts_of_bom_and_cr_files_show_the_line_the_position_names(sets, newline):
    text = sets.replace(sets.ALERT, "when temp_water >", "when temp_watr >")
    d = sets.make({"a.hydro": b"\xef\xbb\xbf" + text.replace("\n", newline).encode()})
    diags, sources = collect([d.name])
    assert [sets.at(x) for x in diags] == [("HR101", 7, 8)]
    assert "7 |   when temp_watr > 26 °C for 15m\n  |        ^^^^^^^^^\n" in render.to_text(diags, sources)


def test_a_rule_file_outside_any_rule_set_is_checked_on_its_own(sets, tmp_path):
    (tmp_path / "lone.hydro").write_bytes(b"\xef\xbb\xbfhydro 1\r\rmetric m {\r  unit pHH\r  range 0 .. 14\r}\r")
    diags, sources = collect(["lone.hydro"])
    assert [(x.code, x.span.path, x.span.line, x.span.column) for x in diags] == [("HR108", "lone.hydro", 4, 8)]
    assert "4 |   unit pHH\n  |        ^^^\n" in render.to_text(diags, sources)


# ---- HR005 manifest -------------------------------------------------------------------
def test_hr005_use_of_a_missing_rule_set(sets):
    man = 'hydro 1\nruleset site version "2026.11.1"\nuse "../nowhere"\n'
    assert sets.found({"ruleset.hydro": man}) == [("HR005", "ruleset.hydro", 3, 5)]


def test_hr005_manifest_without_ruleset_line(sets):
    assert sets.found({"ruleset.hydro": "hydro 1\n"}) == [("HR005", "ruleset.hydro", 1, 1)]


def test_hr005_bad_version_string(sets):
    man = 'hydro 1\nruleset site version "next week"\n'
    assert sets.found({"ruleset.hydro": man}) == [("HR005", "ruleset.hydro", 2, 22)]


def test_hr005_ruleset_outside_the_manifest(sets):
    text = sets.ALERT + 'ruleset other version "1.0"\n'
    assert sets.found({"a.hydro": text}) == [("HR005", "a.hydro", 10, 9)]


def test_hr005_use_cycle(sets, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "ruleset.hydro").write_text('hydro 1\nruleset a version "1"\nuse "../b"\n')
    (b / "ruleset.hydro").write_text('hydro 1\nruleset b version "1"\nuse "../a"\n')
    (d,) = sets.check(a)
    assert (d.code, d.span.path, d.span.line, d.span.column) == ("HR005", "b/ruleset.hydro", 3, 5)
    assert "cycle" in d.message


# ---- HR006 nesting --------------------------------------------------------------------
def test_hr006_brackets_nested_too_deep(sets):
    deep = "(" * (MAX_NESTING + 1) + "temp_water > 26 °C" + ")" * (MAX_NESTING + 1)
    (d,) = sets.check({"a.hydro": sets.replace(sets.ALERT, "temp_water > 26 °C", deep)})
    # the alert's `{` counts too: the 64th `(` is the 65th bracket
    assert (d.code, d.span.line, d.span.column) == ("HR006", 7, 8 + MAX_NESTING - 1)


def test_hr006_brackets_at_the_limit_are_fine(sets):
    deep = "(" * (MAX_NESTING - 1) + "temp_water > 26 °C" + ")" * (MAX_NESTING - 1)
    assert sets.found({"a.hydro": sets.replace(sets.ALERT, "temp_water > 26 °C", deep)}) == []


@pytest.mark.parametrize(
    "expr",
    [
        "not " * (MAX_EXPR_DEPTH + 1) + "temp_water > 26 °C",
        "temp_water" + " + 1 °C" * (MAX_EXPR_DEPTH + 1) + " > 26 °C",
        " and ".join(["temp_water > 26 °C"] * (MAX_EXPR_DEPTH + 2)),
    ],
    ids=["not-chain", "sum-chain", "and-chain"],
)
def test_hr006_expression_too_deep_is_an_error_not_a_crash(sets, expr):
    (d,) = sets.check({"a.hydro": sets.replace(sets.ALERT, "temp_water > 26 °C", expr)})
    assert (d.code, d.span.line) == ("HR006", 7)


def test_hr006_long_but_allowed_expression(sets):
    expr = " and ".join(["temp_water > 26 °C"] * (MAX_EXPR_DEPTH // 2))
    assert sets.found({"a.hydro": sets.replace(sets.ALERT, "temp_water > 26 °C", expr)}) == []


def test_hr003_second_header_in_a_file(sets):
    text = sets.ALERT + sets.ALERT.replace("warm", "hot")
    (d,) = sets.check({"a.hydro": text})
    assert (d.code, d.span.line, d.span.column) == ("HR003", 10, 1)
    assert "first line" in d.hint


def test_hr005_a_rule_set_used_twice_is_read_once(sets, tmp_path):
    # a site using two sets that both use the standard rules: no "defined twice" for the rules
    for name in ("b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "ruleset.hydro").write_text(sets.manifest().replace("site", name))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ruleset.hydro").write_text('hydro 1\nruleset a version "1"\nuse "../b"\nuse "../c"\n')
    assert sets.found(tmp_path / "a") == []


# ---- newcomers' mistakes (language 1.2 work): units, lines that end early, several errors -------------
@pytest.mark.parametrize(
    "written, hint",
    [
        ("26C", "write `26 °C`"),
        ("26 C", "write `26 °C`"),
        ("26 c", "write `26 °C`"),
        ("26 deg C", "write `26 °C`"),
        ("26 deg", "write `26 °C`"),
        ("26°", "write `26 °C`"),
        ("26 ° C", "write `26 °C`"),
        ("26ºC", "write `26 °C`"),
        ("26 celsius", "write `26 °C`"),
        ("79 °F", "temperatures are written in °C: 79 °F is `26.1 °C`"),
        ("79 F", "temperatures are written in °C: 79 °F is `26.1 °C`"),
    ],
)
def test_hr108_a_temperature_without_its_degree_sign_is_told_the_spelling(sets, written, hint):
    text = sets.replace(sets.ALERT, "temp_water > 26 °C", f"temp_water > {written}")
    (d,) = sets.check({"a.hydro": text})
    assert (d.code, d.span.line) == ("HR108", 7)
    assert d.message.startswith("unknown unit `") and d.hint == hint


@pytest.mark.parametrize(
    "written, hint",
    [
        ("2 mS", "write `2 mS/cm`"),
        ("2 ms/cm", "write `2 mS/cm`"),
        ("2 MS/cm", "write `2 mS/cm`"),
        ("2000 uS", "write `2000 uS/cm`"),
        ("5 l", "write `5 L`"),
        ("5 litres", "write `5 L`"),
        ("5 lpm", "write `5 L/min`"),
        ("5 l/min", "write `5 L/min`"),
        ("5 mls", "write `5 ml`"),
        ("50 percent", "write `50%`"),
        ("500 lux", "write `500 lx`"),
        ("6 PH", "write `6 pH`"),
    ],
)
def test_hr108_other_units_people_write_are_told_the_spelling(sets, written, hint):
    text = sets.replace(sets.ALERT, "temp_water > 26 °C", f"temp_water > {written}")
    (d,) = sets.check({"a.hydro": text})
    assert (d.code, d.span.line, d.hint) == ("HR108", 7, hint)


def test_hr108_a_misspelt_unit_in_a_setting_is_found_on_its_own_line(sets):
    """`max 24C` reads as `max 24` and a setting `C` whose value is the next line's name: the parser
    stops a line later, and the mistake is still shown where it is."""
    profile = "hydro 1\n\nprofile p {\n  heat {\n    max 24C\n    min 18 °C\n  }\n}\n"
    (d,) = sets.check({"a.hydro": profile})
    assert (d.code, d.span.line, d.span.column, d.hint) == ("HR108", 5, 11, "write `24 °C`")


def test_hr108_a_misspelt_unit_inside_a_text_is_not_a_mistake(sets):
    text = sets.replace(sets.ALERT, '"Nutrient solution too warm"', '"above 26 C"')
    assert sets.found({"a.hydro": text}) == []


def test_hr003_a_line_that_ends_too_early_is_the_line_shown(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C for 15m", "when temp_water >\n    for 15m")
    (d,) = sets.check({"a.hydro": text})
    assert (d.code, d.span.line, d.span.column) == ("HR003", 7, 20)
    assert d.message == "the line ends too early: `>` needs something after it"


def test_hr003_a_missing_opening_brace_is_shown_at_the_end_of_its_line(sets):
    text = sets.replace(sets.ALERT, "alert biz_warm_solution {", "alert biz_warm_solution  # warm")
    (d,) = sets.check({"a.hydro": text})
    assert (d.code, d.span.line, d.span.column) == ("HR003", 3, 24)
    assert "`{`" in d.message and "end of this line" in d.hint


def test_hr003_a_missing_value_before_the_closing_brace_is_shown_on_its_line(sets):
    text = sets.replace(sets.ALERT, "clear when temp_water < 24 °C for 15m", "clear when temp_water < 24 °C for")
    (d,) = sets.check({"a.hydro": text})
    assert (d.code, d.span.line, d.span.column) == ("HR003", 8, 36)
    assert "expected a duration" in d.message


def test_hr003_every_broken_line_of_a_declaration_is_reported(sets):
    text = (
        sets.ALERT.replace("source biz", "source: biz")
        .replace("when temp_water > 26 °C for 15m", "when temp_water > 26 °C fo 15m")
        .replace("for 15m\n}", "for 15\n}")
    )
    diags = sets.check({"a.hydro": text})
    assert [(d.code, d.span.line) for d in diags] == [("HR003", 4), ("HR003", 7), ("HR003", 8)]


def test_hr003_a_broken_multi_line_condition_is_one_error(sets):
    text = sets.replace(
        sets.ALERT, "when temp_water > 26 °C for 15m", "when temp_water > 26 °C and\n    ec >> 2 mS/cm\n    and ph < 7"
    )
    diags = sets.check({"a.hydro": text})
    assert [(d.code, d.span.line) for d in diags] == [("HR003", 8)]


def test_hr003_at_most_20_syntax_errors_per_file_then_one_line_says_more_follow(sets):
    broken = "".join(
        sets.ALERT.removeprefix("hydro 1\n").replace("warm", f"warm{i}").replace(" for 15m", " fo 15m")
        for i in range(15)
    )
    diags = sets.check({"a.hydro": "hydro 1\n" + broken})
    assert [d.code for d in diags] == ["HR003"] * 21
    assert diags[-1].message == "more syntax errors from here on; only the first 20 are shown"


def test_hr003_a_block_without_its_closing_brace_is_shown_where_the_brace_belongs(sets):
    text = sets.MACHINE
    lines = text.split("\n")
    closing = next(i for i, line in enumerate(lines) if line == "  }")  # the first state's `}`
    broken = "\n".join(lines[:closing] + lines[closing + 1 :])
    (d,) = sets.check({"a.hydro": broken})
    above = next(i for i in range(closing - 1, -1, -1) if lines[i].strip())
    assert (d.code, d.span.line, d.span.column) == ("HR003", above + 1, len(lines[above]) + 1)
    assert d.message.startswith("a `}` is missing after this line")
