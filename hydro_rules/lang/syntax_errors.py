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
#: units as people write them (lower case) -> the language's spelling; only spellings that can
#: mean nothing else after a number (`m` and `ms` are durations, so they are not here)
_UNIT_SPELLINGS = {
    "c": "°C",
    "°c": "°C",
    "ºc": "°C",
    "deg": "°C",
    "degc": "°C",
    "deg c": "°C",
    "degree": "°C",
    "degrees": "°C",
    "degree c": "°C",
    "degrees c": "°C",
    "celsius": "°C",
    "°": "°C",
    "ms/cm": "mS/cm",
    "msiemens": "mS/cm",
    "ms/cm2": "mS/cm",
    "us": "uS/cm",
    "µs": "uS/cm",
    "us/cm": "uS/cm",
    "µs/cm": "µS/cm",
    "l": "L",
    "lt": "L",
    "ltr": "L",
    "litre": "L",
    "litres": "L",
    "liter": "L",
    "liters": "L",
    "mls": "ml",
    "millilitre": "ml",
    "millilitres": "ml",
    "milliliter": "ml",
    "milliliters": "ml",
    "lpm": "L/min",
    "l/min": "L/min",
    "l/m": "L/min",
    "lmin": "L/min",
    "percent": "%",
    "pct": "%",
    "lux": "lx",
    "lx": "lx",
    "ml": "ml",
    "ph": "pH",
    "ma": "mA",
    "ppm": "ppm",
    "mg/l": "ppm",
}
#: spelled with a capital letter, these are units of conductivity, not durations (`1.5 mS`)
_CASED_SPELLINGS = {"mS": "mS/cm", "uS": "uS/cm", "µS": "µS/cm", "MS/cm": "mS/cm", "mS/m": None}
_FAHRENHEIT = {"f", "°f", "ºf", "degf", "deg f", "fahrenheit", "degrees f"}
#: a number and the word after it (a unit as written), on one line
_NUMBER_WORD = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)([ \t]*)((?:deg(?:rees?)?[ \t]+[CcFf]\b)|[A-Za-z°ºµ][\w/°µ]*|°)")
#: words that go on a statement, which a line may start with
_LINE_WORDS = frozenset(["for", "do", "then", "guarded", "after", "every", "at", "to", "by", "night", "max_off", "off"])
_DECL_TERMINALS = frozenset(k.upper() for k in DECL_KEYWORDS)
_INVISIBLE = {"\u00a0", "\u2007", "\u202f", "\u200b", "\u2060", "\ufeff", "\u3000"}


def unit_spelling(num: str, word: str) -> str | None:
    """How to write `NUM WORD` when WORD is a unit people write that the language spells otherwise
    (`24C` -> write `24 °C`), or None."""
    folded = re.sub(r"[ \t]+", " ", word).lower()
    if word in U.UNITS:
        return None
    if folded in _FAHRENHEIT:
        celsius = (float(num) - 32) * 5 / 9
        return f"temperatures are written in °C: {num} °F is `{celsius:.1f} °C`"
    unit = _CASED_SPELLINGS.get(word, _UNIT_SPELLINGS.get(folded))
    if unit is None:
        return None
    return f"write `{num}{unit}`" if unit == "%" else f"write `{num} {unit}`"


def _quantity_spelling(line: int, text: str, until: int | None, path: str, diags: Diagnostics) -> bool:
    """Report the first quantity on a line (before column `until`) whose unit is misspelt; True if found."""
    text = _CODE_END.sub(lambda m: " " * len(m.group()), text)  # not in texts and comments
    for m in _NUMBER_WORD.finditer(text):
        if until is not None and m.start(3) + 1 > until:
            break
        if re.match(r"\d", text[m.end(3) : m.end(3) + 1] or "x"):
            continue
        num, word = m.group(1), m.group(3)
        if not m.group(2) and (num + word) and re.fullmatch(r"(\d+(\.\d+)?(ms|s|m|h|d|w))+", num + word):
            continue  # a duration
        hint = unit_spelling(num, word)
        if hint:
            col = m.start(3) + 1
            diags.add("HR108", f"unknown unit `{word}`", Span(path, line, col, line, col + len(word)), hint)
            return True
    return False


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


class _Stop(Exception):
    """The error leaves the declaration's blocks in doubt (a brace missing or too many, the text ending
    early): parsing it again without the broken line would only report what follows from this one."""


def _syntax_error(
    lark: Lark, err: UnexpectedInput, path: str, line_offset: int, chunk: str, diags: Diagnostics
) -> tuple[int, int] | None:
    """Report one syntax error of a declaration (`chunk`, starting after `line_offset` lines). Returns
    the lines of the chunk (first and last, from 1) the mistake is on when the rest of the declaration
    can be read without them, for reporting its further errors; None when it cannot."""
    try:
        at = _report(lark, err, path, line_offset, chunk, diags)
    except _Stop:
        return None
    return at if isinstance(at, tuple) else (at, at)


def _report(lark, err, path, line_offset, chunk, diags) -> int | tuple[int, int]:
    lines = chunk.split("\n")
    rel = err.line if isinstance(err.line, int) and err.line > 0 else 1
    col = err.column if isinstance(err.column, int) and err.column > 0 else 1
    line = rel + line_offset
    text = lines[rel - 1] if rel <= len(lines) else ""
    at = Span.char(path, line, col)
    if isinstance(err, UnexpectedCharacters):
        _char_error(text, col, set(err.allowed or ()), at, diags)
        return rel
    if not isinstance(err, UnexpectedToken):
        if text[col - 1 :].startswith(("light", "lights")) or re.match(r"[ \t]*\d{1,2}:\d{2}", text[col - 1 :]):
            word = re.search(r"(\w+)[ \t]*$", text[: col - 1])
            if word:  # a zone item's name before a time: only `light` takes one
                ws = word.start(1) + 1
                diags.add(
                    "HR003",
                    f"unexpected name `{word.group(1)}` before a time of day",
                    Span(path, line, ws, line, word.end(1) + 1),
                    "when the lights are on is written `light 06:00 to 20:00`",
                )
                return rel
        diags.add("HR003", "the text cannot be read here", at)
        return rel
    tok = err.token
    try:
        acc = set(err.accepts)
    except Exception:  # the interactive parser is missing: fall back on the state's terminals
        acc = set(err.expected or ())
    if tok.type == "$END":
        _end_error(lark, tok, acc, path, line_offset, chunk, diags)
        raise _Stop
    starts_line = not text[: col - 1].strip()
    above = _previous_code(lines, rel)
    prev = above if starts_line else None
    if _quantity_spelling(line, text, col, path, diags):  # `24 C`, read as a number and a name
        return rel
    if above and _quantity_spelling(above[0] + line_offset, lines[above[0] - 1], None, path, diags):
        return above[0], rel  # `max 24C` then `min 18`: `C min` was read as a setting
    first = re.fullmatch(r"[ \t]*([a-z_]+)[ \t]*", text[: col - 1])
    last = _OPEN_END.search(lines[above[0] - 1][: above[1] - 1]) if above else None
    if first and first.group(1) in _ITEM_KEYWORDS | _LINE_WORDS and last:
        # `when x > 1 and` / `enter stop p`: the keyword was read as a name continuing the line above
        diags.add(
            "HR003",
            f"the line ends too early: `{last.group().strip()}` needs something after it",
            Span.char(path, above[0] + line_offset, above[1]),
            f"line {line} starts with `{first.group(1)}`, which cannot continue it; complete this line",
        )
        return above[0], rel
    if not starts_line and above and _reads_without(lark, lines, above[0], rel, line_offset == 0):
        # the line above took this line's first words as its own: it is the line that is not complete
        acc_above = _accepts_after(lark, "\n".join(lines[: above[0]]), line_offset == 0)
        expected = _expected(lark, acc_above) if acc_above else ""
        diags.add(
            "HR003",
            "the line ends too early" + (f": {expected}" if expected else ""),
            Span.char(path, above[0] + line_offset, above[1]),
            f"line {line} cannot be read after it: the start of line {line} was read as the end of this one",
        )
        return above[0], rel
    end_line = (tok.end_line or rel) + line_offset
    end_col = tok.end_column or col + 1
    span = Span(path, line, col, end_line, end_col)
    found = f"unexpected {_token_words(tok)}"
    before = text[: col - 1]
    after = text[tok.end_column - 1 :] if tok.end_line == tok.line and tok.end_column else ""
    number_before = re.search(r"(\d+(?:\.\d+)?)[ \t]*$", before)
    hint = None
    if tok.type == "NUMBER" and "NUMBER" not in acc and acc & {"DURATION", "PERCENT"}:
        word = re.match(r"[ \t]*([A-Za-z]+)\b", text[tok.end_column - 1 :] if tok.end_column else "")
        if "DURATION" in acc and word and word.group(1).lower() in _DURATION_WORDS:  # `30 sec`
            short = _DURATION_WORDS[word.group(1).lower()]
            diags.add(
                "HR003",
                f"`{tok} {word.group(1)}` is not a duration",
                Span(path, line, col, line, tok.end_column + word.end(1)),
                f"a duration is one word: write `{tok}{short}` (s, m, h, d or w)",
            )
        elif "DURATION" in acc:
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
        return rel
    if str(tok).isidentifier() and number_before:
        word = (str(tok) + re.match(r"[\w/°µ]*", after).group()) if after else str(tok)
        num = number_before.group(1)
        two = re.match(r"[ \t]+[CcFf]\b", after) if word.lower() in ("deg", "degree", "degrees") else None
        if two:  # `24 deg C`
            word += two.group()
        unit_span = Span(path, line, col, line, col + len(word))
        spelled = unit_spelling(num, word)
        if spelled:
            diags.add("HR108", f"unknown unit `{word}`", unit_span, spelled)
            return rel
        if word.lower() in _DURATION_WORDS and "DURATION" not in acc:
            short = _DURATION_WORDS[word.lower()]
            diags.add(
                "HR003",
                f"unexpected `{word}` after the number {num}",
                unit_span,
                f"a duration is one word: write `{num}{short}` (s, m, h, d or w)",
            )
            return rel
        unit_hint = did_you_mean(word, U.UNITS)
        if unit_hint:
            diags.add("HR108", f"unknown unit `{word}`", unit_span, unit_hint)
            return rel
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
            return rel
    if tok.type == "NAME":
        keywords = {k for k in (_keyword(lark, n) for n in acc) if k}
        hint = did_you_mean(str(tok), keywords)
        if hint:
            diags.add("HR003", found, span, hint)
            return rel
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
        if acc <= _DECL_TERMINALS | {"$END"}:
            diags.add("HR003", f"unexpected `{tok}`: there is no open `{opener}` for it to close", span)
            raise _Stop
    if hint is None and prev and "RBRACE" not in acc and not acc <= _DECL_TERMINALS | {"$END"}:
        # the line before is not complete, and this one cannot continue it: the mistake is there
        prel, pcol = prev
        expected = _expected(lark, acc)
        missing_brace = "LBRACE" in acc
        diags.add(
            "HR003",
            "the line ends too early" + (f": {expected}" if expected else ""),
            Span.char(path, prel + line_offset, pcol),
            "add `{` at the end of this line: the block's items follow it"
            if missing_brace
            else f"line {line} starts with {_token_words(tok)}, which cannot continue this line",
        )
        if missing_brace:
            raise _Stop
        return prel, rel
    open_ = _unclosed(chunk[: sum(len(x) + 1 for x in lines[: rel - 1])]) if starts_line else None
    if hint is None and _keyword(lark, tok.type) in _ITEM_KEYWORDS and "RBRACE" in acc and open_:
        opener = lines[open_[1] - 1]
        indent = len(text) - len(text.lstrip())
        if prev and open_[0] == "{" and indent <= len(opener) - len(opener.lstrip()):
            # indented as the block's own line or less: the block above ended without its `}`
            opened = opener.strip()
            diags.add(
                "HR003",
                f"a `}}` is missing after this line: `{opened}` (line {open_[1] + line_offset}) is not closed",
                Span.char(path, prev[0] + line_offset, prev[1]),
                f"add `}}` on a line of its own before line {line}, which starts with {_token_words(tok)}",
            )
        else:
            diags.add("HR003", f"{found}: {_expected(lark, acc)}", span, "is a `}` missing on the line before?")
        raise _Stop
    expected = "" if hint else _expected(lark, acc)
    diags.add("HR003", found + (f": {expected}" if expected else ""), span, hint)
    return rel


#: the end of a line that a statement must go on after (`when x > 1 and`)
_OPEN_END = re.compile(r"(\band|\bor|\bnot|[-+*/<>=,]|\bwhen|\bfor|\bafter|\bevery|\bat|\bby|\bthen)$")
#: the start of a line that goes on with the statement of the line before (`  and y < 2`)
_GOES_ON = re.compile(r"[ \t]*(?:(?:and|or|then|guarded|do|for)\b|[-+*/<>=!.,)])")


def code_of(line: str) -> str:
    """A line without its comment and trailing blanks."""
    m = next((m for m in _CODE_END.finditer(line) if m.group().startswith("#")), None)
    return (line[: m.start()] if m else line).rstrip()


def skippable(lines: list[str], first: int, last: int) -> list[int]:
    """The lines (from 1) to leave out so that the rest of a declaration can be read after a mistake on
    lines `first` to `last`: the lines of the statement they are part of. Empty when leaving them out
    would only cause errors of its own: the declaration's first line, a line with a bracket."""
    if first <= 1 or last > len(lines):
        return []
    out = list(range(first, last + 1))
    starts = re.match(r"[ \t]*(deny|go|fail)\b", code_of(lines[first - 1]))
    above = _previous_code(lines, first)
    while above and _OPEN_END.search(code_of(lines[above[0] - 1])):  # the statement starts above
        if above[0] <= 1:
            return []
        out.insert(0, above[0])
        above = _previous_code(lines, above[0])
    for i in range(last, len(lines)):
        code = code_of(lines[i])
        if not code.strip():
            continue
        if not (_GOES_ON.match(code) or (starts and re.match(r"[ \t]*(when|raise|every|do)\b", code))):
            break
        out.append(i + 1)
    for i in out:
        if any(m.group() in "(){}" for m in TEXT_COMMENT_OR_BRACKET.finditer(lines[i - 1]) if len(m.group()) == 1):
            return []
    return out


_CODE_END = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#.*')


def _reads_without(lark: Lark, lines: list[str], above: int, rel: int, whole_file: bool) -> bool:
    """Does the declaration read past line `rel` when line `above` is left out? Then that line, not
    line `rel`, is where the mistake is."""
    if above <= 1 or any(len(m.group()) == 1 for m in TEXT_COMMENT_OR_BRACKET.finditer(lines[above - 1])):
        return False
    test = list(lines)
    test[above - 1] = ""
    try:
        lark.parse("\n".join(test), start="start" if whole_file else "decls")
    except UnexpectedInput as e:
        return isinstance(e.line, int) and e.line > rel
    except Exception:  # an expression too deep, a builder's refusal: no verdict
        return False
    return True


def _accepts_after(lark: Lark, text: str, whole_file: bool) -> set[str]:
    """The terminals the parser accepts at the end of `text` (empty when that cannot be told)."""
    try:
        ip = lark.parse_interactive(text, start="start" if whole_file else "decls")
        ip.exhaust_lexer()
        return set(ip.accepts()) - {"$END"}
    except Exception:
        return set()


def _previous_code(lines: list[str], rel: int) -> tuple[int, int] | None:
    """(line, column just after its last character) of the last line before `rel` with code on it
    (not blank, not only a comment), or None."""
    for i in range(rel - 2, -1, -1):
        code = code_of(lines[i])
        if code.strip():
            return i + 1, len(code) + 1
    return None


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
    number = re.search(r"(\d+(?:\.\d+)?)[ \t]*$", text[: col - 1])
    if ch in "°º" and number:  # `24 °`, `75 °F`, `24ºC`
        word = ch + re.match(r"[A-Za-z]*", text[col:]).group()
        spelled = unit_spelling(number.group(1), word if word != "º" else "°")
        if spelled:
            end = at.column + len(word)
            diags.add("HR108", f"unknown unit `{word}`", Span(at.path, at.line, at.column, at.line, end), spelled)
            return
    if ch == "=":
        if "COMPARE" in allowed:
            hint = "to compare, write `==` (or `<=`, `>=`)"
        else:
            word = re.search(r"(\w+)\s*$", text[: col - 1])
            value = re.match(r'\s*("(?:[^"\\]|\\.)*"?|[^\s{]+)', text[col:])
            hint = f"no `=` is needed: write `{word.group(1) if word else 'name'} {value.group(1) if value else '...'}`"
    elif ch == ":":
        word = re.search(r"(\w+)\s*$", text[: col - 1])
        value = re.match(r'\s*("(?:[^"\\]|\\.)*"?|[^\s{]+)', text[col:])
        if word:
            hint = f"no `:` is needed: write `{word.group(1)} {value.group(1) if value else 'value'}`"
    elif ch == '"':
        diags.add("HR003", "the text is not closed", at, 'end it with `"` on the same line')
        return
    diags.add("HR003", f"unexpected character `{ch}`", at, hint)
