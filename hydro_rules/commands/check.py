"""`hydro-rules check PATH...`: parse and check rule sets, report every problem found."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from ..cli import EXIT_OK, EXIT_PROBLEMS, UsageError
from ..lang import render
from ..lang.diagnostics import Diagnostics
from ..lang.loader import MANIFEST, TEST_SUFFIX, display_path, find_root, load, load_lone, test_files
from ..testing.cases import load_file


def register(sub) -> None:
    p = sub.add_parser(
        "check",
        help="check rule sets and report problems with their place in the source",
        description="Check rule sets: syntax, names, units, ranges, reachability and pump "
        "safety. Exit 0 when clean, 1 when there are errors (or warnings with --strict).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="rule-set directory or rule file")
    p.add_argument("--format", choices=("human", "json", "github"), default="human")
    p.add_argument("--strict", action="store_true", help="fail on warnings too")
    p.set_defaults(run=run)


def collect(paths: list[str], infos: list | None = None) -> tuple[list, dict[str, str]]:
    """Diagnostics (sorted, without repeats) and sources for every path; the information found
    (severity info, not problems) is added to `infos` when a list is given."""
    diags = Diagnostics()
    sources: dict[str, str] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UsageError(f"no such file or directory: {raw}")
        for target, only in _targets(path):
            if target is not None and only is not None and only.name.endswith(TEST_SUFFIX):
                _check_test_file(only, diags, sources)
                continue
            loaded = load(target) if target is not None else load_lone(only)  # None: outside any rule set
            sources.update(loaded.sources)
            shown = display_path(only) if only is not None else None
            for d in loaded.diags.items:
                if shown is None or d.span.path == shown:
                    diags.add(d.code, d.message, d.span, d.hint)
            for d in loaded.diags.infos:  # facts about the set's own files, not about the sets it uses
                if d.span.path == shown or (shown is None and _own(target, d.span.path)):
                    diags.add(d.code, d.message, d.span, d.hint)
            if only is None:
                for test_file in test_files(target):
                    _check_test_file(test_file, diags, sources)
    if infos is not None:
        infos.extend(sorted(diags.infos, key=lambda d: d.sort_key()))
    return diags.sorted(), sources


def _own(root: Path | None, path: str) -> bool:
    """Is `path` (as diagnostics show it) a file of the rule set at `root` itself?"""
    return root is not None and Path(path).resolve().parent == root.resolve()


def _check_test_file(path: Path, diags: Diagnostics, sources: dict[str, str]) -> None:
    """A rule test file, checked with its rule set and the fixtures of its folder."""
    tf = load_file(path)
    sources.update(tf.loaded.sources)
    own = display_path(path)
    root = find_root(path.parent)
    # a test in a folder of its own below the rule set brings that folder's files as fixtures
    fixtures = display_path(path.parent) + "/" if root is not None and path.parent.resolve() != root else None
    for d in tf.loaded.diags.items:
        if d.span.path == own or (fixtures is not None and d.span.path.startswith(fixtures)):
            diags.add(d.code, d.message, d.span, d.hint)


def _targets(path: Path):
    if path.is_dir():
        if (path / MANIFEST).is_file():
            return [(path, None)]
        sets = sorted({m.parent for m in path.rglob(MANIFEST)})
        if not sets:
            raise UsageError(f"{path} holds no rule set (no {MANIFEST} in it or below it)")
        return [(s, None) for s in sets]
    root = find_root(path)
    return [(root, path)] if root else [(None, path)]


def run(args) -> int:
    infos: list = []
    diags, sources = collect(args.paths, infos)
    if args.format == "json":
        print(render.to_json(diags + infos))
    elif args.format == "github":
        out = render.to_github(diags + infos)
        if out:
            print(out)
    else:
        console = Console(stderr=False, highlight=False, soft_wrap=True)
        render.to_human(diags + infos, sources, console)
        errors = sum(d.severity.value == "error" for d in diags)
        warnings = len(diags) - errors
        files = len(sources)
        if diags:
            console.print(f"[bold]{errors} error(s), {warnings} warning(s)[/] in {files} file(s)")
        else:
            console.print(f"[green]✓[/] {files} file(s) checked, no problems")
    errors = any(d.severity.value == "error" for d in diags)
    if errors or (args.strict and diags):
        return EXIT_PROBLEMS
    return EXIT_OK
