"""`hydro-rules test PATH...`: run rule tests, with coverage of states and transitions."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ..cli import EXIT_OK, EXIT_PROBLEMS, UsageError
from ..lang import render
from ..testing.cases import discover, load_file
from ..testing.coverage import Coverage
from ..testing.runner import run_case
from .dry_run import add_firmware_option


def register(sub) -> None:
    p = sub.add_parser(
        "test",
        help="run rule tests (*.test.hydro)",
        description="Run the rule tests found in the given files or folders. Exit 0 when all "
        "pass, 1 when a test fails or a test file has errors.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="test file, or folder to search for *.test.hydro")
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report")
    p.add_argument("--coverage", action="store_true", help="report which states and transitions the tests reached")
    p.add_argument("--coverage-min", type=float, metavar="PCT", help="fail below this coverage (implies --coverage)")
    p.add_argument("-k", metavar="TEXT", dest="select", help="only tests whose name contains TEXT")
    add_firmware_option(p)
    p.set_defaults(run=execute)


def execute(args) -> int:
    for raw in args.paths:
        if not Path(raw).exists():
            raise UsageError(f"no such file or directory: {raw}")
    files = discover(args.paths)
    if not files:
        raise UsageError("no test files (*.test.hydro) found in " + ", ".join(args.paths))
    console = Console(highlight=False, soft_wrap=True)
    started = time.perf_counter()
    results, broken = [], 0
    coverage: Coverage | None = None
    suites = []
    for path in files:
        tf = load_file(path)
        errors = tf.loaded.diags.errors
        console.print(f"[bold]{escape(str(path))}[/]")
        if errors or tf.loaded.ruleset is None:
            broken += 1
            render.to_human(sorted(errors, key=lambda d: d.sort_key()), tf.loaded.sources, console)
            suites.append((path, [], "the test file or its rule set has errors"))
            continue
        if coverage is None:
            coverage = Coverage(tf.loaded.ruleset)
        file_results = []
        for case in tf.cases:
            if args.select and args.select not in case.name:
                continue
            r = run_case(case, tf.loaded.ruleset, args.firmware)
            file_results.append(r)
            coverage.add(r)
            mark = "[green]✓[/]" if r.passed else "[red]✗[/]"
            console.print(f"  {mark} {escape(case.name)} [dim]({r.seconds * 1000:.0f} ms)[/]")
            for f in r.failures:
                console.print(f"      [red]{escape(f)}[/]")
            if r.error:
                console.print(f"      [red]error: {escape(r.error)}[/]")
        results.extend(file_results)
        suites.append((path, file_results, None))
    failed = sum(not r.passed for r in results)
    passed = len(results) - failed
    elapsed = time.perf_counter() - started
    color = "green" if not failed and not broken else "red"
    extra = f", {broken} file(s) with errors" if broken else ""
    console.print(f"[bold {color}]{passed} passed, {failed} failed{extra}[/] in {elapsed:.2f} s")
    code = EXIT_PROBLEMS if failed or broken else EXIT_OK
    if (args.coverage or args.coverage_min is not None) and coverage is not None:
        coverage.print(console)
        if args.coverage_min is not None and coverage.percent < args.coverage_min:
            console.print(f"[red]coverage {coverage.percent:.1f}% is below the minimum {args.coverage_min:g}%[/]")
            code = EXIT_PROBLEMS
    if args.junit:
        write_junit(args.junit, suites)
    return code


def write_junit(path: str, suites) -> None:
    root = ET.Element("testsuites")
    for file, results, error in suites:
        failures = sum(bool(r.failures) for r in results)
        errors = sum(r.error is not None for r in results) + (1 if error else 0)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=str(file),
            tests=str(len(results) + (1 if error else 0)),
            failures=str(failures),
            errors=str(errors),
            time=f"{sum(r.seconds for r in results):.3f}",
        )
        if error:
            tc = ET.SubElement(suite, "testcase", classname=str(file), name="load")
            ET.SubElement(tc, "error", message=error)
        for r in results:
            tc = ET.SubElement(suite, "testcase", classname=str(file), name=r.case.name, time=f"{r.seconds:.3f}")
            if r.failures:
                ET.SubElement(tc, "failure", message=r.failures[0]).text = "\n".join(r.failures)
            if r.error:
                ET.SubElement(tc, "error", message=r.error)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
