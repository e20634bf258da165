"""Golden diagnostics: the mistakes agronomists make, and exactly what `check` tells them.

Every file in corpus/ holds one realistic mistake (its name says which). Each is checked
as part of a small rule set on a copy of the standard rules, and the human output is
snapshotted (tests/lang/__snapshots__/test_check_golden.ambr), so a change of wording
shows in review. Update with `pytest tests/lang/test_check_golden.py --snapshot-update`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hydro_rules.commands.check import collect
from hydro_rules.lang import render

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p for p in CORPUS.iterdir() if p.suffix == ".hydro")
MANIFEST = 'hydro 1\nruleset corpus version "2026.11.1"\nuse "../../rules"\n'
HUGE_BYTES = 50 * 1024 * 1024


def _case_dir(root: Path, name: str) -> Path:
    d = root / "cases" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "ruleset.hydro").write_text(MANIFEST, encoding="utf-8")
    return d


def _huge(root: Path) -> Path:
    """A 50 MB rule file: a valid start, then a long tail (never committed, made here)."""
    d = _case_dir(root, "huge_file")
    p = d / "huge_file.hydro"
    if not p.exists():
        head = (CORPUS / "missing_clear_condition.hydro").read_bytes()
        p.write_bytes(head + b"# " + b"x" * (HUGE_BYTES - len(head) - 3) + b"\n")
    return p


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_corpus_diagnostics(case, rules_copy, monkeypatch, snapshot):
    d = _case_dir(rules_copy, case.stem)
    shutil.copy(case, d / case.name)
    monkeypatch.chdir(rules_copy)
    diags, sources = collect([f"cases/{case.stem}"])
    assert diags, "every corpus file holds a mistake"
    for x in diags:  # each one positioned in the broken file itself
        assert x.span.path == f"cases/{case.stem}/{case.name}"
        assert x.span.line >= 1 and x.span.column >= 1 and x.span.end_line >= x.span.line
    assert render.to_text(diags, sources) == snapshot


def test_a_50_mb_file_is_refused_in_plain_words(rules_copy, monkeypatch, snapshot):
    p = _huge(rules_copy)
    monkeypatch.chdir(rules_copy)
    diags, sources = collect([str(p.parent.relative_to(rules_copy))])
    assert [x.code for x in diags] == ["HR004"]
    assert render.to_text(diags, sources) == snapshot


def test_no_input_makes_the_cli_print_a_traceback(rules_copy):
    """The whole corpus and the 50 MB file through the real command, in one process."""
    for case in CASES:
        shutil.copy(case, _case_dir(rules_copy, case.stem) / case.name)
    _huge(rules_copy)
    p = subprocess.run(
        [sys.executable, "-m", "hydro_rules", "check", "--format", "json", "cases"],
        capture_output=True,
        text=True,
        cwd=rules_copy,
        timeout=120,
    )
    assert "Traceback" not in p.stderr
    assert p.returncode == 1, p.stderr  # errors found; not 3 (an internal error)
    reported = {Path(x["file"]).name for x in json.loads(p.stdout)}
    assert reported == {c.name for c in CASES} | {"huge_file.hydro"}
