"""Syntax errors in plain words.

The parser's error states are turned into what was found, what could come
there instead (the tokens the parser really accepts there, few and grouped),
and a hint for the mistakes people make most (typos of keywords, units without
their number, `=` for `==`, quotes pasted from a word processor, a missing `}`).
"""

from __future__ import annotations

import re

from lark import Lark, Token, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from . import units as U
from .diagnostics import Diagnostics, did_you_mean
from .grammar import DECL_KEYWORDS, TEXT_COMMENT_OR_BRACKET
from .source import Span

_VALUE_WORDS = {
    "NAME": "a name",
    "UID": "a uid such as zn-1",
    "NUMBER": "a number",
    "STRING": 'a "text"',
    "DURATION": "a duration such as 10m",
    "PERCENT": "a percentage such as 50%",
    "QUANTITY": "a quantity such as 1.5 mS/cm",
    "TIME": "a time of day such as 09:00",
    "DATE": "a date such as 2026-01-31",
    "DATETIME": "a date and time such as 2026-01-31T09:00Z",
    "UNIT": "a unit such as mS/cm",
    "PERCENT_SIGN": "`%`",
}
_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH", "COMPARE"}
#: tokens that may start an expression; when most are accepted, they read as "a value"
_EXPR_START = {"NAME", "NUMBER", "QUANTITY", "PERCENT", "DURATION", "TIME", "YES", "NO", "LPAR", "MINUS", "NOT"}
#: keywords that begin a line of a block (or a declaration); many of them read as "the next item"
_ITEM_KEYWORDS = frozenset(
    (
        "source severity text when clear on lock unit range stale alias kind fail_safe current flow measures "
        "moves_level timezone greenhouse zone profile recipe planted reservoir phase window deny initial state "
        "enter exit go fail start stop recirculate release open close dose raise resolve event record reset in "
        "repeat " + " ".join(DECL_KEYWORDS)
    ).split()
)
#: the order items are usually written in, for "an item such as ..."
_ITEM_ORDER_TEXT = (
    "source severity text when clear lock on kind fail_safe unit range stale alias current flow measures "
    "timezone greenhouse zone profile recipe planted reservoir phase window initial state enter exit go fail "
    "deny in do start stop recirculate open close dose raise resolve event record reset"
)
_ITEM_ORDER = tuple(_ITEM_ORDER_TEXT.split())
_DURATION_WORDS = {
    "ms": "ms",
    "msec": "ms",
    "s": "s",
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "m": "m",
    "min": "m",
    "mins": "m",
    "minute": "m",
    "minutes": "m",
    "h": "h",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "d": "d",
    "day": "d",
    "days": "d",
    "w": "w",
    "week": "w",
    "weeks": "w",
}
#: characters that are not part of the language, with what to write instead
_CHAR_HINTS = {
    "'": 'text is written in double quotes: "like this"',
    "‘": 'text is written in straight double quotes: "like this" (an editor turned them into curly quotes)',
    "’": 'text is written in straight double quotes: "like this" (an editor turned them into curly quotes)',
    "“": 'text is written in straight double quotes: "like this" (an editor turned them into curly quotes)',
    "”": 'text is written in straight double quotes: "like this" (an editor turned them into curly quotes)',
    "„": 'text is written in straight double quotes: "like this"',
    "«": 'text is written in straight double quotes: "like this"',
    "»": 'text is written in straight double quotes: "like this"',
    "&": "write `and`",
    "|": "write `or`",
    "!": "write `not` (or `!=` for not equal)",
    "≥": "write `>=`",
    "≤": "write `<=`",
    "≠": "write `!=`",
    "–": "write `..` for a range (5.8 .. 6.2) or `-` for minus",
    "—": "write `..` for a range (5.8 .. 6.2) or `-` for minus",
    "×": "write `*`",
    "÷": "write `/`",
}
_INVISIBLE = {"\u00a0", "\u2007", "\u202f", "\u200b", "\u2060", "\ufeff", "\u3000"}


def _terminal_word(lark: Lark, name: str) -> str | None:
    if name in _VALUE_WORDS:
        return _VALUE_WORDS[name]
    if name == "$END":
        return "the end of the file"
    if name == "COMPARE":
        return "a comparison"
    try:
        pattern = lark.get_terminal(name).pattern
    except KeyError:
        return None
    return f"`{pattern.value}`" if pattern.type == "str" else None


def _keyword(lark: Lark, name: str) -> str | None:
    """The keyword a terminal stands for (`for`, `clear`), or None for other terminals."""
    try:
        pattern = lark.get_terminal(name).pattern
    except KeyError:
        return None
    if pattern.type == "str" and pattern.value.isidentifier():
        return pattern.value
    return None


def _expected(lark: Lark, acc: set[str]) -> str:
    """Plain words for what the parser accepts, few and grouped: values, keywords that
    continue the line, operators, the block's items, closing brackets."""
    acc = set(acc)
    words: list[str] = []
    if len(acc & _EXPR_START) >= 5:
        words.append("a value such as `6.5`, `20%` or `ph`")
        acc -= _EXPR_START
    cont, items, closers = [], [], []
    for name in sorted(acc):
        kw = _keyword(lark, name)
        if kw is not None:
            (items if kw in _ITEM_KEYWORDS else cont).append(f"`{kw}`")
        elif name in ("RBRACE", "RPAR"):
            closers.append(_terminal_word(lark, name))
    declarations = {f"`{k}`" for k in DECL_KEYWORDS}
    for name in sorted(acc):
        if name in _OPERATORS or name in ("RBRACE", "RPAR", "$END") or _keyword(lark, name):
            continue
        w = _terminal_word(lark, name)
        if w:
            words.append(w)
    words = cont + words
    if acc & _OPERATORS:
        words.append("an operator" if acc & {"PLUS", "STAR"} else "a comparison")
    if len(items) > 4 and set(items) <= declarations:
        words.append("a declaration such as `alert`, `machine` or `profile`")
    elif len(items) > 4:
        order = {k: i for i, k in enumerate(_ITEM_ORDER)}
        first = sorted(items, key=lambda w: order.get(w.strip("`"), len(order)))[:3]
        words.append("an item such as " + ", ".join(first))
    else:
        words.extend(items)
    words.extend(closers)
    if not words and "$END" in acc:
        words.append("the end of the file")
    if not words:
        return ""
    if len(words) == 1:
        return "expected " + words[0]
    return "expected " + ", ".join(words[:-1]) + " or " + words[-1]


def _token_words(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    text = str(tok)
    if tok.type in ("NAME", "UID"):
        return f"name `{text}`"
    if tok.type == "STRING":
        return f"text {text}"
    return f"`{text}`"


def _unclosed(chunk: str) -> tuple[str, int, int] | None:
    """The bracket of a declaration that is never closed, as (char, line, column) in the
    chunk; when indentation shows which block lost its `}`, that block's `{`."""
    stack: list[tuple[str, int, int, int]] = []
    suspect = None
    for lineno, line in enumerate(chunk.split("\n"), start=1):
        indent = len(line) - len(line.lstrip())
        for m in TEXT_COMMENT_OR_BRACKET.finditer(line):
            ch = m.group()
            if ch in "({":
                stack.append((ch, lineno, m.start() + 1, indent))
            elif ch in ")}" and stack:
                opener, oline, ocol, oindent = stack.pop()
                if suspect is None and ch == "}" and oline != lineno and indent != oindent:
                    suspect = (opener, oline, ocol)
    if not stack:
        return None
    return suspect or stack[-1][:3]


def _syntax_error(lark: Lark, err: UnexpectedInput, path: str, line_offset: int, chunk: str, diags: Diagnostics):
    """Report one syntax error of a declaration (`chunk`, starting after `line_offset` lines)."""
    lines = chunk.split("\n")
    rel = err.line if isinstance(err.line, int) and err.line > 0 else 1
    col = err.column if isinstance(err.column, int) and err.column > 0 else 1
    line = rel + line_offset
    text = lines[rel - 1] if rel <= len(lines) else ""
    at = Span.char(path, line, col)
    if isinstance(err, UnexpectedCharacters):
        _char_error(text, col, set(err.allowed or ()), at, diags)
        return
    if not isinstance(err, UnexpectedToken):
        diags.add("HR003", "the text cannot be read here", at)
        return
    tok = err.token
    try:
        acc = set(err.accepts)
    except Exception:  # the interactive parser is missing: fall back on the state's terminals
        acc = set(err.expected or ())
    if tok.type == "$END":
        _end_error(lark, tok, acc, path, line_offset, chunk, diags)
        return
    end_line = (tok.end_line or rel) + line_offset
    end_col = tok.end_column or col + 1
    span = Span(path, line, col, end_line, end_col)
    found = f"unexpected {_token_words(tok)}"
    before = text[: col - 1]
    after = text[tok.end_column - 1 :] if tok.end_line == tok.line and tok.end_column else ""
    number_before = re.search(r"(\d+(?:\.\d+)?)[ \t]*$", before)
    hint = None
    if tok.type == "NUMBER" and "NUMBER" not in acc and acc & {"DURATION", "PERCENT"}:
        if "DURATION" in acc:
            diags.add(
                "HR003",
                f"`{tok}` needs a unit here: expected a duration such as 10m",
                span,
                f"write `{tok}m` for minutes ({tok}s seconds, {tok}h hours, {tok}d days)",
            )
        else:
            v = float(tok)
            hint = f"write `{v * 100:g}%`" if 0 < v <= 1 else f"write `{tok}%`"
            diags.add("HR003", f"`{tok}` needs a unit here: expected a percentage such as 50%", span, hint)
        return
    if str(tok).isidentifier() and number_before:
        word = (str(tok) + re.match(r"[\w/°µ]*", after).group()) if after else str(tok)
        num = number_before.group(1)
        unit_span = Span(path, line, col, line, col + len(word))
        if word.lower() in _DURATION_WORDS and "DURATION" not in acc:
            short = _DURATION_WORDS[word.lower()]
            diags.add(
                "HR003",
                f"unexpected `{word}` after the number {num}",
                unit_span,
                f"a duration is one word: write `{num}{short}` (s, m, h, d or w)",
            )
            return
        unit_hint = did_you_mean(word, U.UNITS)
        if unit_hint:
            diags.add("HR108", f"unknown unit `{word}`", unit_span, unit_hint)
            return
    if tok.type == "SLASH":  # `unit mg/L`: the part before `/` was read as a name
        head = re.search(r"(?:\bunit[ \t]+|\d[ \t]*)([\w°µ]+)$", before)
        tail = re.match(r"[\w°µ]+", after)
        if head and tail:
            word = f"{head.group(1)}/{tail.group()}"
            start = col - len(head.group(1))
            diags.add(
                "HR108",
                f"unknown unit `{word}`",
                Span(path, line, start, line, start + len(word)),
                did_you_mean(word, U.UNITS) or "units: " + ", ".join(U.UNITS),
            )
            return
    if tok.type == "NAME":
        keywords = {k for k in (_keyword(lark, n) for n in acc) if k}
        hint = did_you_mean(str(tok), keywords)
        if hint:
            diags.add("HR003", found, span, hint)
            return
    if str(tok) == "hydro" and not before.strip():
        hint = "a file states its version once, on its first line; remove this line (were two files joined?)"
    elif tok.type == "STRING" and "NAME" in acc and re.fullmatch(r'"[A-Za-z_]\w*"', str(tok)):
        hint = f"names are written without quotes: `{str(tok)[1:-1]}`"
    elif tok.type == "COMMA" and number_before and after[:1].isdigit():
        found = "unexpected `,` in a number"
        hint = f"decimals are written with a point: `{number_before.group(1)}.{re.match(r'[0-9]+', after).group()}`"
    elif tok.type == "MINUS" and any(_terminal_word(lark, n) == "`..`" for n in acc):
        hint = "a range is written with `..`, e.g. `5.8 .. 6.2`"
    elif tok.type == "PERCENT_SIGN" and number_before:
        hint = f"write the percentage without a space: `{number_before.group(1)}%`"
    elif tok.type in ("RBRACE", "RPAR") and not acc & {"RBRACE", "RPAR"}:
        opener = "{" if tok.type == "RBRACE" else "("
        if acc <= {f"{k.upper()}" for k in DECL_KEYWORDS} | {"$END"}:
            diags.add("HR003", f"unexpected `{tok}`: there is no open `{opener}` for it to close", span)
            return
    elif (
        _keyword(lark, tok.type) in _ITEM_KEYWORDS
        and "RBRACE" in acc
        and not before.strip()
        and _unclosed(chunk[: sum(len(x) + 1 for x in lines[: rel - 1])])
    ):
        hint = "is a `}` missing on the line before?"
    elif "LBRACE" in acc and "RBRACE" not in acc and tok.type != "LBRACE" and not before.strip():
        hint = "is a `{` missing at the end of the line before?"
    expected = "" if hint and not hint.startswith("is a") else _expected(lark, acc)
    diags.add("HR003", found + (f": {expected}" if expected else ""), span, hint)


def _end_error(lark, tok, acc, path, line_offset, chunk, diags) -> None:
    """The declaration (or file) ends before it is complete: most often a missing `}`."""
    open_ = _unclosed(chunk)
    if open_:
        ch, oline, ocol = open_
        closer = "}" if ch == "{" else ")"
        nlines = chunk.rstrip("\n").count("\n") + 1
        diags.add(
            "HR003",
            f"`{ch}` is never closed: a `{closer}` is missing",
            Span.char(path, oline + line_offset, ocol),
            f"add `{closer}` where this block ends (at the latest on line {nlines + line_offset})"
            if ch == "{"
            else f"add `{closer}` where the expression ends",
        )
        return
    line = (tok.end_line or tok.line or 1) + line_offset
    col = tok.end_column or 1
    expected = _expected(lark, acc)
    diags.add(
        "HR003",
        "the declaration ends too early" + (f": {expected}" if expected else ""),
        Span.char(path, line, col),
    )


def _char_error(text: str, col: int, allowed: set[str], at: Span, diags: Diagnostics) -> None:
    ch = text[col - 1 : col] or "?"
    if ch in _INVISIBLE or not ch.isprintable():
        name = "non-breaking space" if ch in ("\u00a0", "\u202f", "\u2007") else "invisible character"
        diags.add(
            "HR003",
            f"unexpected {name} (U+{ord(ch):04X})",
            at,
            "replace it with an ordinary space (it often comes from copying text out of a document)",
        )
        return
    hint = _CHAR_HINTS.get(ch)
    if ch == "=":
        if "COMPARE" in allowed:
            hint = "to compare, write `==` (or `<=`, `>=`)"
        else:
            word = re.search(r"(\w+)\s*$", text[: col - 1])
            value = re.match(r"\s*([^\s{]+)", text[col:])
            hint = f"no `=` is needed: write `{word.group(1) if word else 'name'} {value.group(1) if value else '...'}`"
    elif ch == ":":
        word = re.search(r"(\w+)\s*$", text[: col - 1])
        value = re.match(r"\s*([^\s{]+)", text[col:])
        if word:
            hint = f"no `:` is needed: write `{word.group(1)} {value.group(1) if value else 'value'}`"
    elif ch == '"':
        diags.add("HR003", "the text is not closed", at, 'end it with `"` on the same line')
        return
    diags.add("HR003", f"unexpected character `{ch}`", at, hint)
