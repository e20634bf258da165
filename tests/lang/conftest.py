"""Fixtures for the checker tests: small rule sets written into tmp_path.

A test writes one or two files; the manifest `use`s the shipped `rules/` by absolute
path, so the inputs stay small and the names of the standard rule set are known.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hydro_rules.commands.check import collect
from hydro_rules.lang.diagnostics import Diagnostic

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules"
EXAMPLES = REPO / "examples"

#: a valid alert; tests break one line of it
ALERT = """hydro 1

alert biz_warm_solution {
  source biz
  severity warning
  text "Nutrient solution too warm"
  when temp_water > 26 °C for 15m
  clear when temp_water < 24 °C for 15m
}
"""

#: a valid machine that starts a pump, with a timeout and a guard
MACHINE = """hydro 1

machine top_up {
  initial TOP_UP_IDLE

  state TOP_UP_IDLE {
    go TOP_UP_FILL when water_level < levels.min
  }

  state TOP_UP_FILL {
    enter { start pump_fill guarded by can_run_pump, no_overflow, tank_is_sound }
    go TOP_UP_IDLE when water_level >= levels.target
    go TOP_UP_IDLE after 20m
  }
}
"""


def replace(text: str, old: str, new: str) -> str:
    """`text` with `old` (which must occur exactly once) replaced by `new`."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def pos(text: str, needle: str) -> tuple[int, int]:
    """(line, column) of the one occurrence of `needle` in `text`, counted from 1."""
    assert text.count(needle) == 1, f"{needle!r} occurs {text.count(needle)} times"
    i = text.index(needle)
    return text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1


def manifest(use_rules: bool = True, name: str = "site") -> str:
    use = f'use "{RULES}"\n' if use_rules else ""
    return f'hydro 1\nruleset {name} version "2026.11.1"\n{use}'


class RuleSets:
    """Writes rule sets below a tmp directory (the working directory) and checks them."""

    ALERT = ALERT
    MACHINE = MACHINE
    replace = staticmethod(replace)
    pos = staticmethod(pos)
    manifest = staticmethod(manifest)

    def __init__(self, root: Path):
        self.root = root
        self.count = 0

    def make(self, files: dict[str, str | bytes], use_rules: bool = True, with_manifest: bool = True) -> Path:
        self.count += 1
        d = self.root / f"set{self.count}"
        d.mkdir()
        if with_manifest and "ruleset.hydro" not in files:
            (d / "ruleset.hydro").write_text(manifest(use_rules), encoding="utf-8")
        for name, content in files.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            (d / name).write_bytes(data)
        return d

    @staticmethod
    def site_files(replacements: dict[str, tuple[str, str]] | None = None) -> dict[str, str]:
        """The files of the demo site in examples/, with `file: (old, new)` edits."""
        files = {p.name: p.read_text(encoding="utf-8") for p in EXAMPLES.glob("*.hydro") if p.name != "ruleset.hydro"}
        for name, (old, new) in (replacements or {}).items():
            files[name] = replace(files[name], old, new)
        return files

    def site(self, replacements: dict[str, tuple[str, str]] | None = None, extra: dict | None = None) -> Path:
        """The demo site of examples/ on the standard rules, with `file: (old, new)` edits."""
        return self.make(self.site_files(replacements) | (extra or {}))

    def check(self, files: dict[str, str | bytes] | Path, **kw) -> list[Diagnostic]:
        d = files if isinstance(files, Path) else self.make(files, **kw)
        diags, _ = collect([str(d.relative_to(self.root))])
        return diags

    def one(self, files, **kw) -> Diagnostic:
        """The single diagnostic `files` get; fails listing them all when there is not exactly one."""
        diags = self.check(files, **kw)
        assert len(diags) == 1, [(d.code, str(d.span), d.message) for d in diags]
        return diags[0]

    @staticmethod
    def at(d: Diagnostic) -> tuple[str, int, int]:
        return d.code, d.span.line, d.span.column

    def found(self, files, **kw) -> list[tuple[str, str, int, int]]:
        """(code, file name, line, column) of every diagnostic."""
        return [(d.code, Path(d.span.path).name, d.span.line, d.span.column) for d in self.check(files, **kw)]


@pytest.fixture
def sets(tmp_path, monkeypatch) -> RuleSets:
    monkeypatch.chdir(tmp_path)
    return RuleSets(tmp_path)


@pytest.fixture(scope="session")
def rules_copy(tmp_path_factory) -> Path:
    """A copy of rules/ in a directory of its own, for outputs that must not show the repo path."""
    root = tmp_path_factory.mktemp("golden")
    shutil.copytree(RULES, root / "rules")
    return root
