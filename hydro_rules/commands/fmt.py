"""`hydro-rules fmt PATH...`: rewrite rule files in the one canonical layout.

Directories are searched for `*.hydro` (rule and test files) below them.
Without options changed files are rewritten in place. `--check` and `--diff`
write nothing: `--check` lists the files that would change, `--diff` prints a
unified diff; either exits 1 when any file would change (so both work as CI
gates, alone or together). A file with syntax errors is never rewritten: its
diagnostics are printed and the run exits 1.
Exit codes: 0 all formatted, 1 files would change or have errors, 2 usage errors,
3 the formatter refused its own output (a bug; the file is left unchanged).
"""

from __future__ import annotations

import difflib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..cli import EXIT_INTERNAL, EXIT_OK, EXIT_PROBLEMS, UsageError
from ..lang import render
from ..lang.diagnostics import Diagnostic, Diagnostics
from ..lang.formatter import NotFormatted, format_text
from ..lang.loader import display_path, read_bytes
from ..lang.parser import decode, excerpt_source
from ._common import err_console


def register(sub) -> None:
    p = sub.add_parser(
        "fmt",
        help="rewrite rule files in the canonical layout",
        description="Format rule files (*.hydro, also below directories) in the one canonical layout, "
        "keeping every comment. Without options files are rewritten in place.",
        epilog="--check and --diff write nothing and exit 1 when a file would change. "
        "Files with syntax errors are left untouched and make the run exit 1.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="rule file, or directory to search for *.hydro")
    p.add_argument("--check", action="store_true", help="list the files that would change; exit 1 if any")
    p.add_argument("--diff", action="store_true", help="print a unified diff of the changes; exit 1 if any")
    p.set_defaults(run=run)


@dataclass
class Outcome:
    """What formatting one file gave: new text when it parsed, else diagnostics or a refusal."""

    path: Path
    shown: str
    data: bytes
    source: str = ""  # the text excerpts of its diagnostics show
    text: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    refused: str | None = None

    @property
    def changed(self) -> bool:
        return self.text is not None and self.text.encode("utf-8") != self.data


def files(paths: list[str]) -> list[Path]:
    """The files to format, in order, without repeats; usage errors for missing paths."""
    out: dict[Path, None] = {}
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*.hydro")
                if f.is_file() and not any(x.startswith(".") for x in f.relative_to(p).parts)
            )
            if not found:
                raise UsageError(f"{raw} holds no rule files (*.hydro)")
            out.update(dict.fromkeys(found))
        elif p.is_file():
            out[p] = None
        else:
            raise UsageError(f"no such file or directory: {raw}")
    return list(out)


def format_path(path: Path) -> Outcome:
    shown = display_path(path)
    diags = Diagnostics()
    data = read_bytes(path, shown, diags)
    if data is None:
        return Outcome(path, shown, b"", diagnostics=diags.sorted())
    result = Outcome(path, shown, data)
    text = decode(data, shown, diags)
    if text is None:
        result.source, result.diagnostics = excerpt_source(data), diags.sorted()
        return result
    result.source = text
    try:
        result.text = format_text(text, shown)
    except NotFormatted as e:
        result.diagnostics, result.refused = e.diagnostics, None if e.diagnostics else str(e)
    return result


def write(path: Path, text: str) -> None:
    """Replace the file atomically, keeping its permissions."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args) -> int:
    console = err_console()
    outcomes = [format_path(p) for p in files(args.paths)]
    dry = args.check or args.diff
    changed = [o for o in outcomes if o.changed]
    for o in outcomes:
        if o.diagnostics:
            render.to_human(o.diagnostics, {o.shown: o.source}, console)
            print(f"error: {o.shown} not formatted: it has errors", file=sys.stderr)
        elif o.refused:
            print(f"error: {o.refused}", file=sys.stderr)
        if not o.changed:
            continue
        if args.diff:
            before = o.data.decode("utf-8", "replace").splitlines(keepends=True)
            after = o.text.splitlines(keepends=True)
            sys.stdout.writelines(difflib.unified_diff(before, after, o.shown, o.shown + " (formatted)"))
        if args.check:
            print(f"would reformat {o.shown}", file=sys.stderr)
        if not dry:
            write(o.path, o.text)
            print(f"reformatted {o.shown}", file=sys.stderr)
    failed = [o for o in outcomes if o.diagnostics or o.refused]
    unchanged = len(outcomes) - len(changed) - len(failed)
    verb = "would be reformatted" if dry else "reformatted"
    summary = f"{len(changed)} file(s) {verb}, {unchanged} unchanged"
    print(summary + (f", {len(failed)} not formatted (errors)" if failed else ""), file=sys.stderr)
    if any(o.refused and not o.diagnostics for o in outcomes):
        return EXIT_INTERNAL
    if failed or (dry and changed):
        return EXIT_PROBLEMS
    return EXIT_OK
