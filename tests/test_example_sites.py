"""Both example sites stay clean under what CI runs on a site: check --strict, fmt --check, tests at 100 %
coverage. (Their 60-day dry runs are in .ci/run: too long for the timed suite.)"""

import re
from pathlib import Path

import pytest

from hydro_rules.cli import main
from hydro_rules.lang import ast as A
from hydro_rules.lang.loader import load

ROOT = Path(__file__).resolve().parents[1]
SITES = ["examples", "sites/hillside"]


def hydro_rules(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("site", SITES)
def test_the_site_checks_clean_even_strictly(site, capsys):
    code, out = hydro_rules(capsys, "check", "--strict", str(ROOT / site))
    assert code == 0, out
    assert "no problems" in out


@pytest.mark.parametrize("site", SITES)
def test_the_site_is_formatted(site, capsys):
    code, out = hydro_rules(capsys, "fmt", "--check", str(ROOT / site))
    assert code == 0, out


@pytest.mark.parametrize("site", SITES)
def test_the_sites_tests_pass_and_cover_every_state_and_transition(site, capsys):
    code, out = hydro_rules(capsys, "test", str(ROOT / site), "--coverage-min", "100")
    assert code == 0, out
    assert "Coverage 100.0%" in out


def _bodies(loaded, under: str) -> dict[str, str]:
    """Each declaration of the rule files under `under`, as its text with its name and layout taken out."""
    out = {}
    for f in loaded.files:
        path = f.path.replace("\\", "/")
        if under not in path or "/tests/" in path:
            continue
        lines = loaded.sources[f.path].splitlines()
        for d in f.decls:
            name = getattr(getattr(d, "name", None), "name", None)
            if not name or isinstance(d, A.RulesetDecl):
                continue
            text = " ".join(lines[d.span.line - 1 : d.span.end_line])
            text = re.sub(r"#[^\n]*", "", text.replace(name, "NAME"))
            out[f"{path}:{d.span.line} {name}"] = " ".join(text.split())
    return out


def test_the_second_site_copies_no_standard_definition():
    """The site replaces or extends standard definitions by name; no standard definition is repeated
    in its files, under its name or another."""
    site = load(ROOT / "sites" / "hillside")
    assert site.ok
    standard = set(_bodies(load(ROOT / "rules"), "rules/").values())
    assert standard, "the standard rules' declarations were not read"
    copies = [where for where, body in _bodies(site, "sites/hillside").items() if body in standard]
    assert copies == []
