"""`hydro-rules check` as CI and people use it: exit codes, --strict, output formats."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hydro_rules.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["check", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def broken(sets):
    """A rule set with an error (line 7) and a warning (line 11) in one file."""
    text = sets.replace(sets.ALERT, "when temp_water > 26", "when temp_watr > 26")
    text += (
        sets.ALERT.removeprefix("hydro 1\n")
        .replace("biz_warm_solution", "biz_hot_solution")
        .replace("  clear when temp_water < 24 °C for 15m\n", "")
    )
    return sets.make({"a.hydro": text})


def warned(sets):
    text = sets.replace(sets.ALERT, "  clear when temp_water < 24 °C for 15m\n", "")
    return sets.make({"a.hydro": text})


# ---- exit codes --------------------------------------------------------------------------
def test_exit_0_when_clean(sets, capsys):
    d = sets.make({"a.hydro": sets.ALERT})
    code, out, _ = run(capsys, d.name)
    assert code == 0 and "no problems" in out


def test_exit_1_when_errors(sets, capsys):
    code, out, _ = run(capsys, broken(sets).name)
    assert code == 1
    assert "1 error(s), 1 warning(s)" in out


def test_warnings_alone_exit_0(sets, capsys):
    code, out, _ = run(capsys, warned(sets).name)
    assert code == 0 and "warning[HR501]" in out


def test_strict_fails_on_warnings(sets, capsys):
    code, _, _ = run(capsys, "--strict", warned(sets).name)
    assert code == 1


def test_strict_on_a_clean_set_exits_0(sets, capsys):
    d = sets.make({"a.hydro": sets.ALERT})
    assert run(capsys, "--strict", d.name)[0] == 0


def test_exit_2_for_a_missing_path(sets, capsys):
    code, out, err = run(capsys, "no/such/dir")
    assert code == 2 and "no such file or directory: no/such/dir" in err and out == ""


def test_exit_2_for_a_directory_without_a_rule_set(sets, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "empty")
    assert code == 2 and "no rule set" in err


def test_exit_2_for_an_unknown_format(sets, capsys):
    with pytest.raises(SystemExit) as e:
        main(["check", "--format", "xml", "."])
    assert e.value.code == 2


def test_several_paths_are_all_checked(sets, capsys):
    a, b = broken(sets), warned(sets)
    code, out, _ = run(capsys, "--format", "json", a.name, b.name)
    files = {d["file"] for d in json.loads(out)}
    assert code == 1 and files == {f"{a.name}/a.hydro", f"{b.name}/a.hydro"}


def test_a_single_file_reports_only_that_file(sets, capsys):
    d = broken(sets)
    (d / "b.hydro").write_text(sets.ALERT.replace("biz_warm_solution", "biz_other").replace("26", "2 pH"))
    code, out, _ = run(capsys, "--format", "json", d / "a.hydro")
    assert code == 1 and {x["file"] for x in json.loads(out)} == {f"{d.name}/a.hydro"}


def test_a_directory_holding_several_rule_sets(sets, capsys, tmp_path):
    broken(sets), warned(sets)
    code, out, _ = run(capsys, "--format", "json", ".")
    assert code == 1 and len(json.loads(out)) == 3


# ---- --format json --------------------------------------------------------------------------
def test_json_fields(sets, capsys):
    code, out, _ = run(capsys, "--format", "json", broken(sets).name)
    items = json.loads(out)
    assert code == 1
    assert [set(i) for i in items] == [
        {"code", "severity", "file", "line", "column", "end_line", "end_column", "message"}
    ] * 2
    error, warning = items  # sorted by file and line
    assert warning == {
        "code": "HR501",
        "severity": "warning",
        "file": "set1/a.hydro",
        "line": 11,
        "column": 7,
        "end_line": 11,
        "end_column": 23,
        "message": "alert `biz_hot_solution` has no clear condition: once raised it stays active "
        "(add `clear when ...` (with a hysteresis) or `clear on reset`)",
    }
    assert error["code"] == "HR101" and error["severity"] == "error"
    assert (error["line"], error["column"], error["end_line"], error["end_column"]) == (7, 8, 7, 17)
    assert error["message"] == "unknown metric `temp_watr` (did you mean `temp_water`?)"


def test_json_when_clean_is_an_empty_list(sets, capsys):
    d = sets.make({"a.hydro": sets.ALERT})
    code, out, _ = run(capsys, "--format", "json", d.name)
    assert code == 0 and json.loads(out) == []


# ---- --format github --------------------------------------------------------------------------
def test_github_annotations(sets, capsys):
    code, out, _ = run(capsys, "--format", "github", broken(sets).name)
    assert code == 1
    assert out.splitlines() == [
        "::error file=set1/a.hydro,line=7,col=8,endLine=7,endColumn=17,title=HR101::"
        "unknown metric `temp_watr` (did you mean `temp_water`?)",
        "::warning file=set1/a.hydro,line=11,col=7,endLine=11,endColumn=23,title=HR501::"
        "alert `biz_hot_solution` has no clear condition: once raised it stays active "
        "(add `clear when ...` (with a hysteresis) or `clear on reset`)",
    ]


def test_github_escapes_what_would_break_the_command(sets, capsys):
    d = sets.make({"a,b%.hydro": "hydro 3\n"})
    code, out, _ = run(capsys, "--format", "github", d.name)
    assert code == 1
    assert out.startswith(f"::error file={d.name}/a%2Cb%25.hydro,line=1,col=7,")


def test_github_when_clean_prints_nothing(sets, capsys):
    d = sets.make({"a.hydro": sets.ALERT})
    assert run(capsys, "--format", "github", d.name) == (0, "", "")


# ---- human output --------------------------------------------------------------------------
def test_human_output_has_position_excerpt_caret_and_help(sets, capsys):
    code, out, _ = run(capsys, broken(sets).name)
    assert code == 1
    assert "error[HR101]: unknown metric `temp_watr`" in out
    assert "--> set1/a.hydro:7:8" in out
    assert "7 |   when temp_watr > 26 °C for 15m" in out
    assert "  |        ^^^^^^^^^" in out
    assert "= help: did you mean `temp_water`?" in out
    assert "see docs/diagnostics/HR101.md" in out


# ---- no traceback, ever ---------------------------------------------------------------------------
def test_a_crash_inside_check_is_one_line_and_exit_3(sets, capsys, monkeypatch):
    import hydro_rules.commands.check as check

    def boom(paths, infos=None):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(check, "collect", boom)
    code, out, err = run(capsys, ".")
    assert code == 3 and "internal error (RuntimeError: simulated bug)" in err and "Traceback" not in err


def test_cli_in_a_subprocess_reports_broken_files_without_traceback(sets):
    d = sets.make({"a.hydro": b"\xff\xfe\x00garbage", "b.hydro": "hydro 1\nalert {{{ (((\n", "c.hydro": ""})
    p = subprocess.run(
        [sys.executable, "-m", "hydro_rules", "check", "--format", "json", d.name],
        capture_output=True,
        text=True,
        cwd=sets.root,
        timeout=60,
    )
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert {x["file"] for x in json.loads(p.stdout)} == {f"{d.name}/{n}" for n in ("a.hydro", "b.hydro", "c.hydro")}
