"""Fuzzing check and fmt with mutated copies of the shipped rule files.

Every mutant (tokens or bytes dropped, duplicated, swapped; random bytes, invalid UTF-8, NULs and
bracket runs inserted) must check clean or get diagnostics positioned inside a file, fmt must
format it or refuse it with such diagnostics, and neither may raise.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hydro_rules.commands.check import collect
from hydro_rules.commands.fmt import format_path
from hydro_rules.lang.diagnostics import Diagnostics
from hydro_rules.lang.formatter import format_text
from hydro_rules.lang.loader import display_path, load_lone
from hydro_rules.lang.parser import decode

REPO = Path(__file__).resolve().parents[2]
SETTINGS = settings(
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow],
)
#: files of the two rule sets (checked as a set) and the rule tests (checked on their own)
SET_FILES = sorted(p.relative_to(REPO).as_posix() for d in ("rules", "examples") for p in (REPO / d).glob("*.hydro"))
LONE_FILES = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "rules").glob("*/*.hydro"))
TOKEN = re.compile(rb'"[^"\n]*"|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|\s+|.', re.S)
NASTY = [
    b"\xff",
    b"\xc3",
    b"\xe2\x80",
    b"\x00",
    b"\xed\xa0\x80",
    b"\r",
    b"\t",
    b'"',
    b"#",
    b"\xc2\xa0",
    b"\xef\xbb\xbf",
]


@st.composite
def mutate(draw, data: bytes) -> bytes:
    """1 to 4 random edits of `data`, at the token or at the byte level."""
    for _ in range(draw(st.integers(1, 4))):
        toks = [m.group() for m in TOKEN.finditer(data)] or [b""]
        i, j = draw(st.integers(0, len(toks) - 1)), draw(st.integers(0, len(toks) - 1))
        b, c = draw(st.integers(0, max(0, len(data) - 1))), draw(st.integers(0, max(0, len(data) - 1)))
        op = draw(st.sampled_from(["drop", "dup", "swap", "drop_b", "dup_b", "swap_b", "insert", "brackets"]))
        if op == "drop":
            toks[i] = b""
        elif op == "dup":
            toks[i] += toks[i]
        elif op == "swap":
            toks[i], toks[j] = toks[j], toks[i]
        if op in ("drop", "dup", "swap"):
            data = b"".join(toks)
        elif op == "drop_b":
            data = data[:b] + data[b + 1 :]
        elif op == "dup_b":
            data = data[: b + 1] + data[b:]
        elif op == "swap_b":
            lo, hi = sorted((b, c))
            data = data[:lo] + data[hi : hi + 1] + data[lo + 1 : hi] + data[lo : lo + 1] + data[hi + 1 :]
        elif op == "insert":
            junk = draw(st.one_of(st.sampled_from(NASTY), st.binary(min_size=1, max_size=8)))
            data = data[:b] + junk + data[b:]
        else:
            data = data[:b] + draw(st.sampled_from([b"(", b"{", b"-", b"not "])) * draw(st.integers(1, 200)) + data[b:]
    return data


def assert_positioned(diags, files: dict[Path, bytes]) -> None:
    """Each diagnostic names one of `files` (by resolved path) and a place inside it."""
    for d in diags:
        s = d.span
        where = Path(s.path).resolve()
        assert where in files, (s.path, d.message)
        text = files[where].removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = text.split(b"\n")  # lines as editors count them: CR, LF and CRLF end a line
        assert 1 <= s.line <= len(lines), (str(s), d.message)
        assert 1 <= s.column <= len(lines[s.line - 1]) + 1, (str(s), d.message)
        assert (s.end_line, s.end_column) >= (s.line, s.column), (str(s), d.message)
        assert s.end_line <= len(lines), (str(s), d.message)


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    for d in ("rules", "examples"):
        shutil.copytree(REPO / d, root / d)
    return root


def set_contents(root: Path) -> dict[Path, bytes]:
    """Every rule file of the copied rule sets, their tests' fixtures included: `check` of a directory
    reads them, so a diagnostic may be positioned in any of them."""
    return {p.resolve(): p.read_bytes() for d in ("rules", "examples") for p in (root / d).rglob("*.hydro")}


def fmt_and_check_lone(path: Path, data: bytes) -> None:
    """`path` (holding `data`) checked on its own and formatted."""
    shown = display_path(path)
    assert_positioned(load_lone(path).diags.items, {path.resolve(): data})
    outcome = format_path(path)
    assert outcome.refused is None, outcome.refused  # the formatter never refuses its own output
    assert_positioned(outcome.diagnostics, {path.resolve(): data})
    if outcome.text is not None:
        assert not outcome.diagnostics
        assert format_text(outcome.text, shown) == outcome.text


@settings(SETTINGS, max_examples=80)
@given(data=st.data(), relpath=st.sampled_from(SET_FILES))
def test_mutated_rule_sets_get_positioned_diagnostics_and_never_raise(sets: Path, data, relpath: str):
    target = sets / relpath
    original = target.read_bytes()
    mutant = data.draw(mutate(original), label="mutant")
    try:
        target.write_bytes(mutant)
        diags, _ = collect([str(sets / "examples")])
        assert_positioned(diags, set_contents(sets))
        fmt_and_check_lone(target, mutant)
    finally:
        target.write_bytes(original)


@settings(SETTINGS, max_examples=40)
@given(data=st.data(), relpath=st.sampled_from(LONE_FILES))
def test_mutated_rule_tests_get_positioned_diagnostics_and_never_raise(sets: Path, data, relpath: str):
    target = sets / relpath
    original = target.read_bytes()
    try:
        target.write_bytes(data.draw(mutate(original), label="mutant"))
        fmt_and_check_lone(target, target.read_bytes())
    finally:
        target.write_bytes(original)


CLI = "import sys; from hydro_rules.cli import main; sys.exit(main())"  # what the console script runs


@settings(SETTINGS, max_examples=3, phases=(Phase.generate,))
@given(data=st.data())
def test_the_cli_survives_mutants(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("cli")
    for d in ("rules", "examples"):
        shutil.copytree(REPO / d, root / d)
    for relpath in data.draw(st.lists(st.sampled_from(SET_FILES), min_size=1, max_size=3, unique=True)):
        (root / relpath).write_bytes(data.draw(mutate((root / relpath).read_bytes())))
    for args in (["check", "examples"], ["fmt", "--check", "rules", "examples"]):
        run = subprocess.run([sys.executable, "-c", CLI, *args], cwd=root, capture_output=True, timeout=60, check=False)
        assert run.stdout or run.stderr, args  # it did run
        assert b"Traceback" not in run.stderr, run.stderr.decode(errors="replace")
        assert run.returncode in (0, 1), (args, run.returncode, run.stderr.decode(errors="replace"))


def test_invalid_utf8_is_positioned_like_other_diagnostics_after_a_lone_cr():
    """Found by the fuzz test: the decoder counted only LF, the parser counts CR, LF and CRLF."""
    diags = Diagnostics()
    assert decode(b"\xef\xbb\xbfhydro 1\r# caf\xc3\xa9\r\n\xe9t\xe9", "x.hydro", diags) is None
    (d,) = diags.items
    assert (d.code, d.span.line, d.span.column) == ("HR004", 3, 1)
