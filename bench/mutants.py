"""Mutation run: break the code one small way at a time and check that a test fails.

    .venv/bin/python bench/mutants.py --limit 20                 # a sample over the default files
    .venv/bin/python bench/mutants.py --files hydro_rules/engine/runtime.py --match hold
    .venv/bin/python bench/mutants.py --list                     # the mutants, none run

Each mutant is one change made with `ast` (or, in SQL text, to the string):
- `cmp`: a comparison flipped at its boundary (< <=, > >=, == !=, in / not in, is / is not);
- `const`: a number constant off by one (n -> n + 1);
- `shift`: the right side of an order comparison one unit later (a >= b -> a >= b + 1);
- `drop`: a statement replaced by `pass`;
- `bool`: `and` <-> `or`;
- `sql`: in SQL text, a comparison flipped, AND <-> OR, DESC -> ASC, an ascending ORDER BY made
  descending, IN -> NOT IN, one item of an IN list dropped, or one of a related IN list added.

The run works on a copy of the tree (hydro_rules, tests, rules, ...) in a temporary directory,
never on the checkout: each mutant is written into the copy, the tests of its file run there
(`pytest -x -n0`, with a timeout), and the file is put back. A mutant is killed when the tests
fail or time out, survived when they pass. The report lists each with file:line and what
changed, the survivors last; the final line is the bench convention's JSON.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: copied into the work tree (what the tests import and read)
TREE = ("hydro_rules", "tests", "rules", "examples", "sites", "runtime", "grammar", "pyproject.toml")
DEFAULT_FILES = (
    "hydro_rules/engine/runtime.py",
    "hydro_rules/engine/channels.py",
    "hydro_rules/store/commands.py",
    "hydro_rules/service/ingest.py",
)
#: the tests that judge a file's mutants, the focused ones first (pytest -x stops at the first failure)
TESTS = {
    "hydro_rules/engine/runtime.py": ["tests/engine/test_boundaries.py", "tests/engine"],
    "hydro_rules/engine/channels.py": ["tests/engine/test_boundaries.py", "tests/engine"],
    "hydro_rules/engine/compiler.py": ["tests/engine/test_boundaries.py", "tests/engine"],
    "hydro_rules/engine/safety.py": ["tests/engine"],
    "hydro_rules/sim/timeouts.py": ["tests/engine/test_boundaries.py", "tests/sim/test_timeouts.py"],
    "hydro_rules/store/commands.py": [
        "tests/store/test_commands_store.py",
        "tests/store/test_command_statuses.py",
        "tests/service/test_read_routes.py",
        "tests/service/test_commands_end.py",
        "tests/service/test_commands_http.py",
        "tests/service/test_commands_offline.py",
    ],
    "hydro_rules/service/ingest.py": [
        "tests/service/test_ingest_core.py",
        "tests/service/test_newest_wins.py",
        "tests/service/test_mqtt_door.py",
        "tests/service/test_http.py",
        "tests/store/test_telemetry_store.py",
    ],
}
_FLIP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_SYM = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}
_ORDER = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_SQL = re.compile(r"\b(SELECT|UPDATE|INSERT|DELETE)\b")
_SQL_FLIPS = (
    (" <= ", " < "),
    (" >= ", " > "),
    (" < ", " <= "),
    (" > ", " >= "),
    (" AND ", " OR "),
    (" OR ", " AND "),
    (" DESC", " ASC"),
)
_ORDER_BY = re.compile(r"ORDER BY ([\w.()]+)(?! DESC)(?=[\s,]|$)")
_IN_LIST = re.compile(r"\bIN \(((?:'[^']*'(?:, )?)+)\)")


@dataclass(frozen=True)
class Mutant:
    file: str
    line: int
    op: str
    what: str
    node: int  # index of the node in ast.walk order
    arg: int = 0  # which change at that node (which operator, which SQL occurrence)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


# ---- finding and making mutants ----------------------------------------------------------------
def _skipped(node: ast.AST, parents: dict) -> bool:
    """Docstrings, logging, __slots__ and type-checking blocks change nothing a test could see."""
    p = parents.get(node)
    while p is not None:
        if isinstance(p, ast.If) and "TYPE_CHECKING" in ast.unparse(p.test):
            return True
        if isinstance(p, ast.Expr) and isinstance(p.value, ast.Call) and _is_log(p.value):
            return True
        p = parents.get(p)
    return False


def _is_log(call: ast.Call) -> bool:
    f = call.func
    return isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in ("log", "logger", "logging")


def _is_docstring(stmt: ast.AST, parents: dict) -> bool:
    p = parents.get(stmt)
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
        and p is not None
        and getattr(p, "body", [None])[0] is stmt
    )


def _parents(tree: ast.AST) -> dict:
    out = {}
    for n in ast.walk(tree):
        for c in ast.iter_child_nodes(n):
            out[c] = n
    return out


def _sql_changes(text: str, lists: tuple[frozenset, ...] = ()) -> list[tuple[str, str]]:
    """(what, mutated text) of each SQL change of a string. `lists`: the file's IN lists; an IN list
    may gain a literal of another list it shares one with (a sweep that takes a `done` command)."""
    out = []
    for old, new in _SQL_FLIPS:
        start = 0
        while (i := text.find(old, start)) >= 0:
            out.append((f"SQL {old.strip()} -> {new.strip()}", text[:i] + new + text[i + len(old) :]))
            start = i + len(old)
    for m in _ORDER_BY.finditer(text):
        out.append((f"SQL ORDER BY {m.group(1)} -> DESC", text[: m.end(1)] + " DESC" + text[m.end(1) :]))
    for m in _IN_LIST.finditer(text):
        out.append(("SQL IN -> NOT IN", text[: m.start()] + "NOT " + text[m.start() :]))
        items = [s.strip() for s in m.group(1).split(",")]
        if len(items) > 1:
            for k, item in enumerate(items):
                rest = ", ".join(items[:k] + items[k + 1 :])
                out.append((f"SQL IN drops {item}", text[: m.start(1)] + rest + text[m.end(1) :]))
        kin = sorted(set().union(*(x for x in lists if x & set(items))) - set(items)) if lists else []
        for word in kin:
            if word not in items:
                out.append((f"SQL IN gains {word}", text[: m.end(1)] + ", " + word + text[m.end(1) :]))
    return out


def _in_lists(tree: ast.AST) -> tuple[frozenset, ...]:
    found = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and _SQL.search(n.value):
            for m in _IN_LIST.finditer(n.value):
                found.append(frozenset(s.strip() for s in m.group(1).split(",")))
    return tuple(found)


def find_mutants(rel: str, source: str) -> list[Mutant]:
    tree = ast.parse(source)
    parents = _parents(tree)
    lists = _in_lists(tree)
    out: list[Mutant] = []
    for i, n in enumerate(ast.walk(tree)):
        if _skipped(n, parents):
            continue
        line = getattr(n, "lineno", 0)
        if isinstance(n, ast.Compare):
            for k, op in enumerate(n.ops):
                if type(op) in _FLIP:
                    new = _SYM[_FLIP[type(op)]]
                    out.append(Mutant(rel, line, "cmp", f"{_SYM[type(op)]} -> {new}", i, k))
            if len(n.ops) == 1 and isinstance(n.ops[0], _ORDER) and not isinstance(n.comparators[0], ast.Constant):
                out.append(Mutant(rel, line, "shift", f"{ast.unparse(n)} -> right side + 1", i))
        elif isinstance(n, ast.Constant) and type(n.value) in (int, float):
            if not isinstance(parents.get(n), ast.Slice):
                out.append(Mutant(rel, line, "const", f"{n.value!r} -> {n.value + 1!r}", i))
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and _SQL.search(n.value):
            for k, (what, _) in enumerate(_sql_changes(n.value, lists)):
                out.append(Mutant(rel, line, "sql", what, i, k))
        elif isinstance(n, ast.BoolOp):
            new = "or" if isinstance(n.op, ast.And) else "and"
            out.append(Mutant(rel, line, "bool", f"{'and' if new == 'or' else 'or'} -> {new}", i))
        elif isinstance(n, ast.Expr | ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            if _is_docstring(n, parents) or (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)):
                continue
            if isinstance(parents.get(n), ast.ClassDef | ast.Module):
                continue  # class fields and module constants: dropping them only breaks the import
            if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__" for t in n.targets):
                continue
            out.append(Mutant(rel, line, "drop", f"drop `{ast.unparse(n).splitlines()[0][:60]}`", i))
    return out


def apply(source: str, m: Mutant) -> str:
    tree = ast.parse(source)
    nodes = list(ast.walk(tree))
    n = nodes[m.node]
    if m.op == "cmp":
        n.ops[m.arg] = _FLIP[type(n.ops[m.arg])]()
    elif m.op == "shift":
        n.comparators[0] = ast.BinOp(n.comparators[0], ast.Add(), ast.Constant(1))
    elif m.op == "const":
        n.value = n.value + 1
    elif m.op == "sql":
        n.value = _sql_changes(n.value, _in_lists(tree))[m.arg][1]
    elif m.op == "bool":
        n.op = ast.Or() if isinstance(n.op, ast.And) else ast.And()
    elif m.op == "drop":
        parent = _parents(tree)[n]
        for field in ("body", "orelse", "finalbody", "handlers"):
            body = getattr(parent, field, None)
            if isinstance(body, list) and any(x is n for x in body):
                body[[x is n for x in body].index(True)] = ast.copy_location(ast.Pass(), n)
                break
    return ast.unparse(ast.fix_missing_locations(tree))


# ---- running -------------------------------------------------------------------------------------
def make_tree(dest: Path) -> None:
    for name in TREE:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
        elif src.exists():
            shutil.copy2(src, dest / name)


def run_tests(tree: Path, tests: list[str], timeout: float, env: dict) -> tuple[str, float, str, str]:
    """'passed', 'failed' or 'timeout', the seconds it took, the first test that failed, the output."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-n0", "-p", "no:cacheprovider", "--no-header", *tests]
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0, "", ""
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
    return ("passed" if r.returncode == 0 else "failed"), time.monotonic() - t0, failed.group(1) if failed else "", out


def services_env() -> tuple[dict, list]:
    """The environment for the test runs: one database server and one broker for the whole run."""
    from hydro_rules.service.devservers import (
        ThrowawayMosquitto,
        ThrowawayPostgres,
        broker_sizing,
        postgres_available,
        reachable,
    )

    env = dict(os.environ)
    started: list = []
    if "HYDRO_DATABASE_URL" not in env:
        if reachable("127.0.0.1", 5432):
            env["HYDRO_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:5432/postgres"
        elif postgres_available():
            pg = ThrowawayPostgres().start()
            started.append(pg)
            env["HYDRO_DATABASE_URL"] = pg.dsn
    if "HYDRO_MQTT_URL" not in env and shutil.which("mosquitto"):
        broker = ThrowawayMosquitto(extra=broker_sizing(ROOT / "runtime" / "mosquitto" / "hydro.conf")).start()
        started.append(broker)
        env["HYDRO_MQTT_URL"] = broker.url
    return env, started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", nargs="+", default=list(DEFAULT_FILES), help="files to mutate (repo-relative)")
    ap.add_argument("--limit", type=int, default=None, help="run at most N mutants, sampled over the files")
    ap.add_argument("--seed", type=int, default=12, help="seed of the sample")
    ap.add_argument("--ops", nargs="+", default=None, help="only these kinds: cmp const shift drop bool sql")
    ap.add_argument("--match", nargs="+", default=None, help="only mutants whose file:line or change has one of these")
    ap.add_argument("--tests", nargs="+", default=None, help="tests to run for every mutant (default: per file)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per mutant (default: 3 x the clean run + 10)")
    ap.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    ap.add_argument("--json-out", type=Path, default=None, help="also write every result to this file")
    args = ap.parse_args(argv)

    mutants: list[Mutant] = []
    for rel in args.files:
        mutants += find_mutants(rel, (ROOT / rel).read_text())
    if args.ops:
        mutants = [m for m in mutants if m.op in args.ops]
    if args.match:
        mutants = [m for m in mutants if any(t in f"{m.where} {m.what}" for t in args.match)]
    total = len(mutants)
    if args.limit is not None and args.limit < len(mutants):
        mutants = sorted(random.Random(args.seed).sample(mutants, args.limit), key=lambda m: (m.file, m.line))
    if args.list:
        for m in mutants:
            print(f"{m.where:<42} {m.op:<6} {m.what}")
        print(f"{len(mutants)} of {total} mutants")
        return 0
    missing = [rel for rel in {m.file for m in mutants} if args.tests is None and rel not in TESTS]
    if missing:
        ap.error(f"no tests known for {', '.join(missing)}: give --tests")

    env, started = services_env()
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="hydro-mutants-") as tmp:
            tree = Path(tmp)
            make_tree(tree)
            env["PYTHONPATH"] = str(tree)
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            tests_of = {rel: args.tests or [t for t in TESTS[rel] if (tree / t).exists()] for rel in args.files}
            baseline = {}
            for rel in sorted({m.file for m in mutants}):
                outcome, secs, _, out = run_tests(tree, tests_of[rel], 1800, env)
                if outcome != "passed":
                    print(out[-3000:])
                    print(f"the tests of {rel} fail without a mutant ({' '.join(tests_of[rel])}): fix that first")
                    return 2
                baseline[rel] = secs
                print(f"clean run for {rel}: {secs:.1f} s ({' '.join(tests_of[rel])})")
            for k, m in enumerate(mutants, 1):
                target = tree / m.file
                original = target.read_text()
                try:
                    target.write_text(apply(original, m))
                    limit = args.timeout or 3 * baseline[m.file] + 10
                    outcome, secs, by, _ = run_tests(tree, tests_of[m.file], limit, env)
                finally:
                    target.write_text(original)
                status = "survived" if outcome == "passed" else "killed" if outcome == "failed" else "killed (timeout)"
                results.append({**m.__dict__, "where": m.where, "status": status, "by": by, "seconds": round(secs, 1)})
                print(f"[{k}/{len(mutants)}] {status:<16} {m.where:<42} {m.op:<6} {m.what} ({secs:.1f} s)", flush=True)
                if by:
                    print(f"    by {by}", flush=True)
    finally:
        for s in started:
            s.remove()

    survived = [r for r in results if r["status"] == "survived"]
    killed = len(results) - len(survived)
    print(f"\n{killed} killed, {len(survived)} survived of {len(results)} run ({total} mutants in the files)")
    for r in survived:
        print(f"  survived: {r['where']:<42} {r['op']:<6} {r['what']}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=1))
    score = killed / len(results) if results else 1.0
    print(
        json.dumps(
            {
                "bench": "mutants",
                "value": round(score, 3),
                "unit": "killed share",
                "run": len(results),
                "killed": killed,
                "survived": [f"{r['where']} {r['op']} {r['what']}" for r in survived],
                "ok": not survived,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
