"""Text to syntax tree, with positioned, plain-language syntax errors.

The Lark LALR parser builds AST nodes directly (an inline transformer), so no
intermediate parse tree is made. When a file has syntax errors it is parsed
again one top-level declaration at a time, so that every broken declaration
is reported, not only the first.
"""

from __future__ import annotations

import gc
import re
from contextlib import contextmanager
from functools import cache

from lark import Lark, UnexpectedInput

from . import ast as A
from . import units as U
from .builder import MAX_EXPR_DEPTH, ExpressionTooDeep, _Builder
from .diagnostics import Diagnostics
from .grammar import DECL_KEYWORDS, SUPPORTED_VERSIONS, TEXT_COMMENT_OR_BRACKET, grammar_text, version_key
from .source import Span, position
from .syntax_errors import _syntax_error, skippable

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_NESTING = 64
#: syntax errors reported per file at most; the rest often follow from the first ones
MAX_SYNTAX_ERRORS = 20

_DECL_LINE = re.compile(r"^(?:%s)\b" % "|".join(DECL_KEYWORDS), re.M)
_HEADER = re.compile(r"[ \t]*hydro[ \t]+(\S+)[ \t]*(#.*)?$")


@cache
def _parser(version: str) -> tuple[Lark, _Builder]:
    builder = _Builder()
    lark = Lark(
        grammar_text(version),
        parser="lalr",
        lexer="contextual",
        start=["start", "decls"],
        transformer=builder,
        lexer_callbacks={"COMMENT": builder.on_comment},
        maybe_placeholders=False,
        cache=False,
    )
    return lark, builder


def normalize(text: str) -> str:
    """Text as every position counts it: without a BOM, and CR, LF and CRLF all ending a line as LF."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def excerpt_source(data: bytes) -> str:
    """What excerpts show of a file that cannot be decoded: nothing of binary data, the start of
    mis-encoded text (its lines counted as decode() counts them)."""
    head = data[:1_000_000]
    return "" if b"\0" in head else normalize(head.decode("utf-8", "replace"))


@contextmanager
def no_gc_pauses():
    """Reading and formatting build large trees of small acyclic objects; the cyclic garbage
    collector would walk them again and again as they grow (a third to a half of the time on
    big files). Collection resumes afterwards, so nothing is lost."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def decode(data: bytes, path: str, diags: Diagnostics) -> str | None:
    """Rule text from raw bytes, or None with a diagnostic."""
    at = Span(path, 1, 1, 1, 1)
    if len(data) > MAX_FILE_BYTES:
        diags.add(
            "HR004",
            f"file is {len(data) / 1e6:.1f} MB; rule files are limited to {MAX_FILE_BYTES // (1024 * 1024)} MB",
            at,
            "split it into several files of the rule set (is this the right file?)",
        )
        return None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        diags.add(
            "HR004",
            "file is saved as UTF-16, not UTF-8",
            at,
            "save it again with the encoding UTF-8 (in Notepad: Save as, Encoding: UTF-8)",
        )
        return None
    if b"\x00" in data:
        diags.add(
            "HR004",
            "file holds binary data, not rule text",
            at,
            "rule files are plain text saved as UTF-8; is this the right file?",
        )
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        # count lines as the decoded text does (CR, LF and CRLF end a line; no BOM), like every other position
        head = data[: e.start].removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        line = head.count(b"\n") + 1
        col = len(head[head.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        byte = data[e.start : e.start + 1]
        legacy = byte.decode("cp1252", "replace")
        seen = f", which is `{legacy}` in Windows-1252/Latin-1" if legacy.isprintable() and legacy != "\ufffd" else ""
        diags.add(
            "HR004",
            f"file is not valid UTF-8: byte 0x{byte[0]:02x} on line {line}{seen}",
            Span.char(path, line, col),
            "save the file with the encoding UTF-8",
        )
        return None
    return normalize(text)


def header_version(text: str, path: str, diags: Diagnostics) -> str | None:
    """The language version from the first line (as written there: `1`, `1.1`), or None with a diagnostic."""
    first = text.split("\n", 1)[0]
    m = _HEADER.match(first)
    supported = ", ".join(SUPPORTED_VERSIONS)
    latest = SUPPORTED_VERSIONS[-1]
    if not text.strip():
        diags.add(
            "HR001",
            "the file is empty",
            Span(path, 1, 1, 1, 1),
            f"a rule file starts with `hydro {latest}`; delete the file if it is not needed",
        )
        return None
    if not m:
        later = re.search(r"^[ \t]*hydro[ \t]+\S+", text, re.M)
        if later and not first.strip().lower().startswith("hydro"):
            n, _ = position(text, later.start())
            diags.add(
                "HR001",
                f"the language version must be on the first line, not on line {n}",
                Span(path, n, 1, n, len(later.group()) + 1),
                f"move `{later.group().strip()}` to the top of the file; comments go below it",
            )
            return None
        if re.match(r"[ \t]*hydro\b|[ \t]*hydro\d", first, re.I):
            diags.add(
                "HR001",
                f"the first line must read `hydro {latest}`",
                Span(path, 1, 1, 1, max(2, len(first) + 1)),
                f"write it in lower case, with a space before the version: `hydro {latest}`",
            )
            return None
        diags.add(
            "HR001",
            f"the first line must state the language version, e.g. `hydro {latest}`",
            Span(path, 1, 1, 1, max(2, len(first) + 1)),
            f"add the line `hydro {latest}` at the top of the file (supported versions: {supported})",
        )
        return None
    raw = m.group(1)
    col = first.index(raw) + 1
    if raw not in SUPPORTED_VERSIONS:
        spelled = re.fullmatch(r"[vV]?(\d+(?:\.\d+)*)", raw)
        meant = None
        if spelled:  # `1.0` is `1`, `v1.1` is `1.1`
            parts = [str(int(p)) for p in spelled.group(1).split(".")]
            while len(parts) > 1 and parts[-1] == "0":
                parts.pop()
            meant = ".".join(parts)
        hint = (
            f"write `hydro {meant}`"
            if meant in SUPPORTED_VERSIONS
            else f"this hydro-rules reads version {supported}; a newer file needs a newer hydro-rules"
            if meant is not None and spelled.group(0) == spelled.group(1) and version_key(meant) > version_key(latest)
            else f"write `hydro {latest}`"
        )
        diags.add(
            "HR002",
            f"language version `{raw}` is not supported; supported versions: {supported}",
            Span(path, 1, col, 1, col + len(raw)),
            hint,
        )
        return None
    return raw


def _nesting_error(text: str, path: str, diags: Diagnostics) -> bool:
    """Refuse brackets nested deeper than MAX_NESTING before parsing (brackets inside
    text and comments do not count). A regex walks the brackets only: files can be large."""
    if text.count("(") + text.count("{") < MAX_NESTING:
        return False
    depth = 0
    for m in TEXT_COMMENT_OR_BRACKET.finditer(text):
        ch = m.group()
        if len(ch) != 1 or ch == '"':
            continue  # a text or a comment
        if ch in "({":
            depth += 1
            if depth > MAX_NESTING:
                line, col = position(text, m.start())
                diags.add(
                    "HR006",
                    f"brackets nested more than {MAX_NESTING} deep",
                    Span.char(path, line, col),
                    "split the expression or block",
                )
                return True
        elif depth:
            depth -= 1
    return False


def parse_text(text: str, path: str, diags: Diagnostics) -> A.File | None:
    """Parse decoded rule text. Returns the file's AST (without the declarations
    that had syntax errors), or None when the header is unusable."""
    version = header_version(text, path, diags)
    if version is None or _nesting_error(text, path, diags):
        return None
    lark, builder = _parser(version)
    builder.file_path, builder.line_offset, builder.comments, builder.depth = path, 0, [], {}
    try:
        result = lark.parse(text, start="start")
        header, decls = result[0], tuple(result[1:])
        broken: tuple[str, ...] = ()
    except (UnexpectedInput, ExpressionTooDeep):
        builder.comments = []
        header, decls, broken = _parse_by_declaration(lark, builder, text, path, diags, version)
    comments = tuple(sorted(builder.comments, key=lambda c: (c.span.line, c.span.column)))
    builder.comments, builder.depth, builder.newer = [], {}, []
    if version_key(version) < version_key("1.2"):
        _read_as_items(decls, version, diags)
    return A.File(path, header, decls, comments, broken)


def _read_as_items(decls, version: str, diags: Diagnostics) -> None:
    """Language 1.2 words that an earlier version reads as an item of their own: `night` after a
    recipe target (`ph 5.8 .. 6.2 night 6 .. 6.4` is a target `night` there) and `max_off` after a
    window, on the same line. The file parses as before; it is told that it meant 1.2 (HR007)."""

    def later(prev, name: A.Ident, word: str, kinds) -> None:
        if name.name == word and isinstance(prev, kinds) and prev.span.end_line == name.span.line:
            diags.add(
                "HR007",
                f"`{word}` is language 1.2, but this file starts with `hydro {version}`",
                name.span,
                "write `hydro 1.2` on the first line",
            )

    def settings(items) -> None:
        prev = None
        for it in items:
            if isinstance(it, A.Section):
                settings(it.items)
            elif isinstance(it, A.Setting):
                later(prev, it.key, "max_off", A.Window)
            prev = it

    for d in decls:
        if isinstance(d, A.ProfileDecl):
            settings(d.items)
        elif isinstance(d, A.RecipeDecl):
            for phase in d.phases:
                prev = None
                for t in phase.targets:
                    later(prev, t.name if isinstance(t, A.TargetRange) else t.key, "night", (A.TargetRange, A.Setting))
                    prev = t


def _parse_newer(chunk: str, offset: int, builder: _Builder, version: str, path: str, diags: Diagnostics):
    """The declarations of a chunk that the file's language version cannot parse, if a later
    version can (the earliest that does): each construct of a later version is then reported
    (HR007), and the declarations are kept so that the rest of the check goes on. None when no
    later version parses it either."""
    for later in SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.index(version) + 1 :]:
        res = _parse_as(chunk, offset, builder, later, version, path, diags)
        if res is not None:
            return res
    return None


def _parse_as(chunk, offset, builder, later, version, path, diags):
    lark, newer = _parser(later)
    newer.file_path, newer.line_offset, newer.depth, newer.newer = path, offset, {}, []
    mark = len(builder.comments)
    newer.comments = builder.comments  # one list: the caller drops what a failed parse added
    try:
        res = lark.parse(chunk, start="start" if offset == 0 else "decls")
    except (UnexpectedInput, ExpressionTooDeep):
        del builder.comments[mark:]
        return None
    finally:
        newer.comments, newer.depth = [], {}
    found = [(span, words, v) for span, words, v in newer.newer if version_key(v) > version_key(version)]
    newer.newer = []
    if not found:  # pragma: no cover - what the older version rejects, the newer marks
        return None
    for span, words, v in found:
        diags.add(
            "HR007",
            f"`{words}` is language {v}, but this file starts with `hydro {version}`",
            span,
            f"write `hydro {max((v for _, _, v in found), key=version_key)}` on the first line",
        )
    return res


def _chunks(text: str) -> list[tuple[int, str]]:
    """(line offset, text) of each top-level declaration, split at lines that
    start with a declaration keyword in the first column."""
    starts = [m.start() for m in _DECL_LINE.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    out, line, prev = [], 0, 0
    for i, s in enumerate(starts):
        line += text.count("\n", prev, s)
        prev = s
        e = starts[i + 1] if i + 1 < len(starts) else len(text)
        out.append((line, text[s:e]))
    return out


def _parse_by_declaration(lark, builder, text, path, diags, version):
    header, decls, broken = None, [], []
    budget = [MAX_SYNTAX_ERRORS]
    for offset, chunk in _chunks(text):
        builder.line_offset, builder.depth = offset, {}
        mark = len(builder.comments)
        try:
            res = lark.parse(chunk, start="start" if offset == 0 else "decls")
        except (UnexpectedInput, ExpressionTooDeep) as err:
            del builder.comments[mark:]
            res = None
            if not isinstance(err, ExpressionTooDeep):
                res = _parse_newer(chunk, offset, builder, version, path, diags)
            if res is not None:
                if offset == 0:
                    header, res = res[0], res[1:]
                decls.extend(res)
                continue
            if isinstance(err, ExpressionTooDeep):
                s = err.span
                diags.add(
                    "HR006",
                    f"expression nested more than {MAX_EXPR_DEPTH} levels deep",
                    Span.char(path, s.line, s.column),
                    "split the condition into simpler ones",
                )
            elif _spend(budget, err, path, offset, diags):
                at = _syntax_error(lark, err, path, offset, chunk, diags)
                _further_errors(lark, builder, chunk, offset, at, path, diags, budget)
            del builder.comments[mark:]  # (only fmt reads comments, and it refuses broken files)
            m = _DECL_NAME.match(chunk)
            if m:
                broken.append(m.group(1))
            if offset == 0:
                header = _bare_header(text, path)
            continue
        if offset == 0:
            header, res = res[0], res[1:]
        decls.extend(res)
    return header, tuple(decls), tuple(broken)


def _spend(budget: list[int], err, path: str, offset: int, diags: Diagnostics) -> bool:
    """May one more syntax error be reported? The first one over the limit says that more follow."""
    budget[0] -= 1
    if budget[0] >= 0:
        return True
    if budget[0] == -1:
        line = (err.line if isinstance(err.line, int) and err.line > 0 else 1) + offset
        diags.add(
            "HR003",
            f"more syntax errors from here on; only the first {MAX_SYNTAX_ERRORS} are shown",
            Span.char(path, line, err.column if isinstance(err.column, int) and err.column > 0 else 1),
            "fix these first: many of the rest often follow from them",
        )
    return False


def _further_errors(lark, builder, chunk, offset, at, path, diags, budget) -> None:
    """The other syntax errors of a declaration: read it again without the lines of each mistake,
    as long as each next error comes after them (the declaration stays left out either way)."""
    lines = chunk.split("\n")
    while at is not None:
        skip = skippable(lines, *at)
        if not skip:
            return
        for i in skip:
            lines[i - 1] = ""
        builder.depth = {}
        mark = len(builder.comments)
        try:
            lark.parse("\n".join(lines), start="start" if offset == 0 else "decls")
            return
        except ExpressionTooDeep:
            return
        except UnexpectedInput as err:
            if not (isinstance(err.line, int) and err.line > skip[-1]) or not _spend(budget, err, path, offset, diags):
                return
            at = _syntax_error(lark, err, path, offset, "\n".join(lines), diags)
        finally:
            del builder.comments[mark:]


_DECL_NAME = re.compile(r"(?:%s)[ \t]+([\w-]+)" % "|".join(DECL_KEYWORDS))


def _bare_header(text, path):
    first = text.split("\n", 1)[0]
    m = _HEADER.match(first)
    col = first.index(m.group(1)) + 1
    span = Span(path, 1, col, 1, col + len(m.group(1)))
    return A.Header(A.Literal(float(m.group(1)), U.NUMBER, m.group(1), span), span)


def parse_file(path: str, data: bytes, diags: Diagnostics) -> tuple[A.File | None, str]:
    """A rule file's bytes to its syntax tree (None when it cannot be read or has no usable
    header) and the text its diagnostics' excerpts show, decoded once."""
    text = decode(data, path, diags)
    if text is None:
        return None, excerpt_source(data)
    return parse_text(text, path, diags), text
