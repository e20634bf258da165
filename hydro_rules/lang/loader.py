"""Rule sets on disk: a directory of `*.hydro` files with a manifest.

The manifest `ruleset.hydro` names the rule set and its version and may `use`
other rule sets by path. Name, version and a hash of every file's content
make the rule-set version stamped on commands, alerts and events.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import ast as A
from . import model as M
from .checker import Checker
from .diagnostics import Diagnostics
from .parser import no_gc_pauses, parse_file
from .source import Span

MANIFEST = "ruleset.hydro"
TEST_SUFFIX = ".test.hydro"
VERSION = re.compile(r"^\d+(\.\d+){0,3}([-+][0-9A-Za-z.]+)?$")


@dataclass
class Loaded:
    """A loaded rule set: the model (None when errors prevent one), the files and what was found."""

    ruleset: M.RuleSet | None
    files: list[A.File] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # path -> text, for excerpts
    diags: Diagnostics = field(default_factory=Diagnostics)
    root: Path | None = None
    #: paths of the files that come from used rule sets (`use`), which `replace`/`extend` may amend
    library: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.ruleset is not None and not self.diags.errors


def display_path(p: Path) -> str:
    """A path as users wrote it: relative to the working directory when below it."""
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def find_root(path: Path) -> Path | None:
    """The rule-set directory holding `path` (itself, or the nearest parent with a manifest)."""
    p = path.resolve()
    for d in [p] + list(p.parents) if p.is_dir() else list(p.parents):
        if (d / MANIFEST).is_file():
            return d
    return None


def rule_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.hydro") if not p.name.endswith(TEST_SUFFIX))


def test_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*" + TEST_SUFFIX))


def load(path: str | Path, extra: list[Path] | None = None) -> Loaded:
    """Load and check the rule set at `path` (a rule-set directory).

    `extra` files (test fixtures) join the rule set's own files.
    """
    with no_gc_pauses():
        return _load(path, extra)


def load_lone(path: Path) -> Loaded:
    """Load and check one rule file that belongs to no rule set, on its own."""
    out = Loaded(None)
    digest = hashlib.sha256()
    f = _read_file(path, out, digest)
    if f is not None:
        out.ruleset = Checker(out.diags).check(out.files, M.RuleSet(path.stem, "0", digest.hexdigest()))
    return out


def _load(path: str | Path, extra: list[Path] | None) -> Loaded:
    root = Path(path)
    out = Loaded(None, root=root)
    if not root.is_dir():
        out.diags.add("HR005", f"`{path}` is not a rule-set directory", Span(str(path), 1, 1, 1, 1))
        return out
    digest = hashlib.sha256()
    name, version = _read_set(root, out, digest, visiting=[], top=True, done=set())
    for p in extra or []:
        _read_file(p, out, digest)
    if name is None:
        return out
    rs = M.RuleSet(name, version, digest.hexdigest(), files=[f.path for f in out.files])
    out.ruleset = Checker(out.diags, out.library).check(out.files, rs)
    return out


def read_bytes(p: Path, shown: str, diags: Diagnostics) -> bytes | None:
    """The bytes of a rule file, or None with a diagnostic when it cannot be read."""
    try:
        return p.read_bytes()
    except OSError as e:
        diags.add("HR004", f"cannot read file: {e.strerror}", Span(shown, 1, 1, 1, 1))
        return None


def _read_file(p: Path, out: Loaded, digest) -> A.File | None:
    shown = display_path(p)
    data = read_bytes(p, shown, out.diags)
    if data is None:
        return None
    digest.update(p.name.encode() + b"\0" + data + b"\0")
    f, out.sources[shown] = parse_file(shown, data, out.diags)
    if f is not None:
        out.files.append(f)
    return f


def _read_set(root: Path, out: Loaded, digest, visiting: list[Path], top: bool, done: set[Path]):
    real = root.resolve()
    manifest = root / MANIFEST
    shown_manifest = display_path(manifest)
    if not manifest.is_file():
        out.diags.add(
            "HR005",
            f"`{display_path(root)}` has no manifest `{MANIFEST}`",
            Span(shown_manifest, 1, 1, 1, 1),
            'create it with `hydro 1` and `ruleset NAME version "2026.1.1"`',
        )
        return None, None
    visiting.append(real)
    name = version = None
    start = len(out.files)
    for p in rule_files(root):
        _read_file(p, out, digest)
    # The files of used rule sets go before this set's own: a name defined in both is then
    # reported as a duplicate where this set repeats it, not inside the library.
    own = out.files[start:]
    del out.files[start:]
    if not top:
        out.library.update(f.path for f in own)
    for f in own:
        for decl in f.decls:
            if isinstance(decl, A.RulesetDecl):
                if f.path != shown_manifest:
                    out.diags.add("HR005", f"`ruleset` belongs in {MANIFEST}", decl.span)
                elif name is not None:
                    out.diags.add("HR005", "the manifest names the rule set twice", decl.span)
                else:
                    name, version = decl.name.name, decl.version.value
                    if not VERSION.match(version):
                        out.diags.add("HR005", f'version "{version}" is not like "2026.11.1"', decl.version.span)
            elif isinstance(decl, A.UseDecl):
                if f.path != shown_manifest:
                    out.diags.add("HR005", f"`use` belongs in {MANIFEST}", decl.span)
                    continue
                target = root / decl.path.value
                if not (target / MANIFEST).is_file():
                    out.diags.add("HR005", f'`use "{decl.path.value}"`: no rule set there', decl.path.span)
                    continue
                if (real_target := target.resolve()) in visiting:
                    out.diags.add("HR005", f'`use "{decl.path.value}"` makes a cycle', decl.path.span)
                    continue
                if real_target in done:
                    continue  # used by another set already (the standard rules under two site sets)
                _read_set(target, out, digest, visiting, top=False, done=done)
    out.files.extend(own)
    if name is None and not any(d.code == "HR003" and d.span.path == shown_manifest for d in out.diags.items):
        out.diags.add(
            "HR005",
            f'{MANIFEST} must name the rule set: `ruleset NAME version "2026.11.1"`',
            Span(shown_manifest, 1, 1, 1, 1),
        )
    visiting.pop()
    done.add(real)
    if name is None and top:
        name, version = real.name, "0"
    return name, version
