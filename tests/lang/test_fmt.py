"""`hydro-rules fmt`: golden layouts of messy inputs, comment keeping, and the command's contract."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hydro_rules.cli import main
from hydro_rules.lang import formatter
from hydro_rules.lang.formatter import NotFormatted, format_text

CASES = Path(__file__).parent / "fmt_cases"
CASE_FILES = sorted(CASES.glob("*.hydro"), key=lambda p: p.name)
REPO = Path(__file__).resolve().parents[2]


def comments(text: str) -> list[str]:
    """Comment texts in order, found without the parser (strings may hold `#`)."""
    return [m.group(1).rstrip() for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"|(#[^\n]*)', text) if m.group(1)]


@pytest.mark.parametrize("case", CASE_FILES, ids=lambda p: p.name)
def test_golden_layout(case: Path, snapshot):
    assert format_text(case.read_text(encoding="utf-8"), case.name) == snapshot


@pytest.mark.parametrize("case", CASE_FILES, ids=lambda p: p.name)
def test_cases_are_idempotent_and_keep_every_comment(case: Path):
    text = case.read_text(encoding="utf-8")
    once = format_text(text, case.name)
    assert format_text(once, case.name) == once
    assert comments(once) == comments(text)


def test_cases_are_messy():
    """The golden inputs must need formatting, or the snapshots prove nothing."""
    for case in CASE_FILES:
        text = case.read_text(encoding="utf-8")
        assert format_text(text, case.name) != text, case.name


def test_shipped_files_are_canonical():
    files = [f for d in ("rules", "examples", "sites") for f in sorted((REPO / d).rglob("*.hydro"))]
    assert files
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert format_text(text, str(f)) == text, f"{f} is not formatted; run hydro-rules fmt"


# ---- layout rules, one by one -------------------------------------------------------------------
def fmt(text: str) -> str:
    return format_text("hydro 1\n" + text, "t.hydro").removeprefix("hydro 1\n")


def test_literals_are_spelled_one_way():
    out = fmt("metric ec { range 0mS/cm .. 10  mS/cm }")
    assert "  range 0 mS/cm .. 10 mS/cm\n" in out


def test_one_blank_line_between_block_declarations_and_at_most_one_kept_inside():
    out = fmt("metric a { unit pH\n\n\n\n  stale after 5m }\n\n\n\nmetric b { unit pH }\nmetric c { unit pH }")
    assert out == (
        "metric a {\n  unit pH\n\n  stale after 5m\n}\n\nmetric b {\n  unit pH\n}\n\nmetric c {\n  unit pH\n}\n"
    )


def test_no_blank_line_after_an_opening_or_before_a_closing_brace():
    out = fmt("metric a {\n\n  unit pH\n\n}")
    assert out == "metric a {\n  unit pH\n}\n"


def test_one_action_stays_on_its_line_several_get_one_line_each():
    out = fmt("machine m { initial S state S { enter stop p exit { stop p; stop q } } }")
    assert "    enter { stop p }\n    exit {\n      stop p\n      stop q\n    }\n" in out


def test_a_long_condition_moves_to_its_own_line_then_wraps_at_and():
    cond = " and ".join(f"metric_number_{i} > {i}" for i in range(8))
    out = fmt(f"machine m {{ initial S state S {{ go S when {cond} for 5m }} }}")
    lines = out.splitlines()
    go = lines.index("    go S")
    assert lines[go + 1].startswith("      when metric_number_0 > 0 and ")
    assert lines[go + 2].startswith("        and ")
    assert lines[go + 3] == "        and metric_number_6 > 6 and metric_number_7 > 7 for 5m"
    assert lines[go + 4] == "  }"
    assert all(len(line) <= 100 for line in lines)


def test_comments_inside_a_statement_move_before_it_and_end_of_line_comments_stay():
    out = fmt("alert biz_a {\n  when a > 1 # inside\n    and b > 2 # at the end\n  source biz\n}")
    assert out == "alert biz_a {\n  # inside\n  when a > 1 and b > 2  # at the end\n  source biz\n}\n"


def test_a_comment_before_a_closing_brace_stays_inside_the_block():
    out = fmt("metric a {\n  unit pH\n# last\n}\n")
    assert out == "metric a {\n  unit pH\n  # last\n}\n"


def test_crlf_and_bom_are_normalized():
    assert format_text("\ufeffhydro 1\r\nmetric a { unit pH }\r\n", "t") == "hydro 1\nmetric a {\n  unit pH\n}\n"


def test_text_with_syntax_errors_is_refused_with_positioned_diagnostics():
    with pytest.raises(NotFormatted) as e:
        format_text("hydro 1\nmetric a { unit pH }\nalert biz_x { when ph > }\n", "bad.hydro")
    d = e.value.diagnostics
    assert d and d[0].code == "HR003" and (d[0].span.line, d[0].span.path) == (3, "bad.hydro")


SOURCE = 'hydro 1\nuse   "here"  # a note\n'
REFUSED = {
    "another path": 'hydro 1\nuse "elsewhere"  # a note\n',
    "a lost comment": 'hydro 1\nuse "here"\n',
    "a changed comment": 'hydro 1\nuse "here"  # a nod\n',
    "text that does not parse": "hydro 1\nuse  # a note\n",
}


@pytest.mark.parametrize("printed", REFUSED.values(), ids=REFUSED.keys())
def test_output_that_would_change_the_file_is_refused(monkeypatch, printed):
    """The safety net behind every run: what fmt prints must parse back to the same tree and comments."""
    monkeypatch.setattr(formatter._Printer, "run", lambda self: printed)
    with pytest.raises(NotFormatted):
        format_text(SOURCE, "m.hydro")
    monkeypatch.setattr(formatter._Printer, "run", lambda self: 'hydro 1\nuse "here"\n# a note\n')
    assert format_text(SOURCE, "m.hydro") == 'hydro 1\nuse "here"\n# a note\n'  # same tree, same comments


def test_the_command_exits_3_and_keeps_the_file_when_fmt_refuses_its_output(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(formatter._Printer, "run", lambda self: 'hydro 1\nuse "elsewhere"\n')
    f = tmp_path / "m.hydro"
    f.write_text('hydro 1\nuse   "here"\n')
    assert main(["fmt", str(f)]) == 3
    assert f.read_text() == 'hydro 1\nuse   "here"\n'


# ---- the command ------------------------------------------------------------------------------
MESSY = "hydro 1\nmetric a {  unit pH }  # note\n"
TIDY = "hydro 1\nmetric a {\n  unit pH\n}  # note\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    (tmp_path / "tidy.hydro").write_text(TIDY)
    (tmp_path / "sub" / "messy.test.hydro").write_text(MESSY)
    (tmp_path / "notes.txt").write_text("not a rule file {")
    return tmp_path


def test_fmt_rewrites_files_below_a_directory(tree: Path, capsys):
    assert main(["fmt", str(tree)]) == 0
    assert (tree / "sub" / "messy.test.hydro").read_text() == TIDY
    assert (tree / "notes.txt").read_text() == "not a rule file {"
    assert "reformatted" in capsys.readouterr().err
    assert main(["fmt", "--check", str(tree)]) == 0


def test_check_lists_files_that_would_change_and_writes_nothing(tree: Path, capsys):
    assert main(["fmt", "--check", str(tree)]) == 1
    listed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("would reformat ")]
    assert listed == [f"would reformat {tree / 'sub' / 'messy.test.hydro'}"]
    assert (tree / "sub" / "messy.test.hydro").read_text() == MESSY


def test_diff_prints_a_unified_diff_writes_nothing_and_exits_1(tree: Path, capsys):
    assert main(["fmt", "--diff", str(tree / "sub" / "messy.test.hydro")]) == 1
    out = capsys.readouterr().out
    assert out.startswith("---") and "\n+++" in out and "\n-metric a {  unit pH }  # note\n" in out
    assert "\n+  unit pH\n" in out
    assert (tree / "sub" / "messy.test.hydro").read_text() == MESSY
    assert main(["fmt", "--diff", "--check", str(tree / "tidy.hydro")]) == 0
    assert capsys.readouterr().out == ""


def test_files_with_syntax_errors_are_reported_and_left_untouched(tree: Path, capsys):
    bad = tree / "bad.hydro"
    bad.write_bytes(b"hydro 1\nmetric a {  unit }\n")
    assert main(["fmt", str(tree)]) == 1
    err = capsys.readouterr().err
    assert "HR003" in err and "bad.hydro:2:" in err
    assert bad.read_bytes() == b"hydro 1\nmetric a {  unit }\n"
    assert (tree / "sub" / "messy.test.hydro").read_text() == TIDY  # the others are still formatted


def test_invalid_utf8_is_reported_and_left_untouched(tmp_path: Path, capsys):
    bad = tmp_path / "latin1.hydro"
    bad.write_bytes(b"hydro 1\nmetric t { unit \xb0C }\n")
    assert main(["fmt", str(bad)]) == 1
    assert "HR004" in capsys.readouterr().err
    assert bad.read_bytes() == b"hydro 1\nmetric t { unit \xb0C }\n"


@pytest.mark.parametrize("argv", [["fmt"], ["fmt", "/no/such/place"], ["fmt", "--bogus", "x"]])
def test_usage_errors_exit_2(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    assert code == 2


def test_a_directory_without_rule_files_is_a_usage_error(tmp_path: Path):
    assert main(["fmt", str(tmp_path)]) == 2


def test_fmt_keeps_file_permissions(tree: Path):
    f = tree / "sub" / "messy.test.hydro"
    f.chmod(0o640)
    assert main(["fmt", str(f)]) == 0
    assert f.stat().st_mode & 0o777 == 0o640
