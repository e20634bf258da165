"""`fmt`: one canonical layout of a rule file, printed from its syntax tree.

Layout: two spaces per level, one item per line, `{` on the line that opens
the block, no blank line after `{` or before `}`, at most one blank line kept
where the author put some between items, exactly one blank line between a
block declaration and its neighbours (the header and consecutive one-line
declarations such as `ruleset` and `use` keep the author's 0 or 1).
Literals print as the parser normalizes them (`1.5  mS/cm` -> `1.5 mS/cm`),
expressions as `exprs.render` prints them (minimal parentheses).
Action lists are always braced: one action stays on its line
(`enter { stop pump_fill }`), several (or one with a comment among them) get
one line each. A condition that would make its line longer than WIDTH moves to
its own `when` line, one level deeper than the statement (alerts and rules
already start with `when`); if it is still too long its top-level and/or
operands are packed greedily and each continuation line starts with the
operator, one level deeper again.

Comments are all kept, in order: a comment on its own line stays before the
item it precedes, at that item's indent (before `}` it stays inside the
block); a comment at the end of a line stays at the end of that line; a
comment inside a statement that spans several lines moves to just before it.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from dataclasses import dataclass, field

from . import ast as A
from .diagnostics import Diagnostic, Diagnostics
from .exprs import _PREC, render
from .grammar import TEXT_COMMENT_OR_BRACKET
from .parser import no_gc_pauses, normalize, parse_text
from .source import Span

WIDTH = 100
INDENT = "  "


class NotFormatted(Exception):
    """The text was left as it is: it has syntax errors (`diagnostics`) or could not be printed safely."""

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None):
        super().__init__(message)
        self.diagnostics = diagnostics or []


def format_text(text: str, path: str = "<text>") -> str:
    """The canonical form of rule text. Raises NotFormatted when it does not parse."""
    text = normalize(text)
    with no_gc_pauses():
        tree = _parse(text, path)
        out = _Printer(text, tree).run()
        _verify(tree, out, path)
    return out


def _parse(text: str, path: str) -> A.File:
    diags = Diagnostics()
    tree = parse_text(text, path, diags)
    if tree is None or diags.errors or tree.broken:
        raise NotFormatted(f"{path}: not formatted, it has syntax errors", diags.sorted())
    return tree


def _verify(before: A.File, out: str, path: str) -> None:
    """Refuse output that does not parse back to the same tree and comments (a formatter bug)."""
    try:
        after = _parse(out, path)
    except NotFormatted as e:
        raise NotFormatted(f"{path}: not formatted, the formatter produced text that does not parse") from e
    same = shape((after.header, after.decls)) == shape((before.header, before.decls))
    if not same or [c.text for c in after.comments] != [c.text for c in before.comments]:
        raise NotFormatted(f"{path}: not formatted, the formatter would change its meaning")


def shape(node):
    """A node without positions, as nested tuples: equal shapes mean the same program.

    Brace style of action lists and the grouping of and/or chains are layout, not meaning.
    """
    if isinstance(node, A.Binary) and node.op in ("and", "or"):
        return ("chain", node.op, tuple(shape(x) for x in _chain(node, node.op)))
    if isinstance(node, tuple | list):
        return tuple(shape(x) for x in node)
    names = _fields(type(node), ("span", "braced"))
    if names is None:
        return node
    return (type(node).__name__,) + tuple(shape(getattr(node, n)) for n in names)


_FIELD_CACHE: dict = {}


def _fields(cls, skip: tuple[str, ...]) -> tuple[str, ...] | None:
    """Field names of a dataclass type without `skip` (None for other types), cached: files can be large."""
    key = (cls, skip)
    if key not in _FIELD_CACHE:
        is_node = dataclasses.is_dataclass(cls)
        _FIELD_CACHE[key] = tuple(f.name for f in dataclasses.fields(cls) if f.name not in skip) if is_node else None
    return _FIELD_CACHE[key]


def _chain(e, op: str) -> list:
    if isinstance(e, A.Binary) and e.op == op:
        return _chain(e.left, op) + _chain(e.right, op)
    return [e]


# ---- chunks: the lines of the output, each tied to its place in the source -------------------
@dataclass
class _Chunk:
    kind: str  # head | open | leaf | close | eof
    depth: int
    lines: list[tuple[int, str]]  # (extra levels, text)
    end: int  # source offset just after the chunk's last token
    top: str = ""  # top-level declarations: "line" or "block"
    start: int = 0  # source offset of its first token
    leading: list[tuple[A.Comment, bool]] = field(default_factory=list)  # (comment, moved from inside)
    trailing: A.Comment | None = None


#: nodes whose span covers all their children (expressions and conditions)
_COVERING = (A.Literal, A.Path, A.Call, A.Unary, A.Binary, A.IsCheck, A.Cond, A.Ident, A.String)
_GLUE = re.compile(r"\.\.|[A-Za-z_]\w*|,|\S")


class _Printer:
    def __init__(self, text: str, tree: A.File):
        self.text = text
        self.tree = tree
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.chunks: list[_Chunk] = []
        self.opens: list[int] = []
        self.match: dict[int, int] = {}
        stack = []
        for m in TEXT_COMMENT_OR_BRACKET.finditer(text):
            if m.group() == "{":
                stack.append(m.start())
                self.opens.append(m.start())
            elif m.group() == "}" and stack:
                self.match[stack.pop()] = m.start()
        self.comment_at = sorted(self.off(c.span.line, c.span.column) for c in tree.comments)

    # ---- positions ------------------------------------------------------------------------
    def off(self, line: int, col: int) -> int:
        return self.line_starts[line - 1] + col - 1

    def end_of(self, node) -> int:
        """Offset just after the last token any span inside `node` covers."""
        if isinstance(node, Span):
            return self.off(node.end_line, node.end_column)
        if isinstance(node, _COVERING):  # their span ends where their last child ends
            return self.off(node.span.end_line, node.span.end_column)
        best = -1
        if isinstance(node, tuple | list):
            for x in node:
                best = max(best, self.end_of(x))
            return best
        for name in _fields(type(node), ()) or ():
            best = max(best, self.end_of(getattr(node, name)))
        return best

    def skip(self, i: int) -> int:
        """The offset of the next token at or after `i` (past blanks and comments)."""
        text, n = self.text, len(self.text)
        while i < n:
            ch = text[i]
            if ch in " \t\n":
                i += 1
            elif ch == "#":
                j = text.find("\n", i)
                i = n if j < 0 else j
            else:
                break
        return i

    def line_of(self, i: int) -> int:
        return bisect.bisect_right(self.line_starts, i) - 1

    def starts_line(self, i: int) -> bool:
        return not self.text[self.line_starts[self.line_of(i)] : i].strip()

    def blank_above(self, i: int) -> bool:
        ln = self.line_of(i)
        return ln > 0 and not self.text[self.line_starts[ln - 1] : self.line_starts[ln]].strip()

    def has_comment(self, lo: int, hi: int) -> bool:
        k = bisect.bisect_right(self.comment_at, lo)
        return k < len(self.comment_at) and self.comment_at[k] < hi

    # ---- emitting --------------------------------------------------------------------------
    def leaf(self, depth: int, lines, node, kind: str = "leaf", top: str = "") -> None:
        if isinstance(lines, str):
            lines = [(0, lines)]
        end = self.end_of(node)
        while True:  # a closing `)` or a `;` after the last span still belongs to the statement
            j = self.skip(end)
            if j < len(self.text) and self.text[j] in ");":
                end = j + 1
            else:
                break
        self.chunks.append(_Chunk(kind, depth, lines, end, top))

    def open(self, depth: int, lines, after, top: str = "") -> int:
        """A line that opens a block at the first `{` after `after` (header nodes or an offset)."""
        if isinstance(lines, str):
            lines = [(0, lines + " {")]
        k = bisect.bisect_left(self.opens, after if isinstance(after, int) else self.end_of(after))
        if k == len(self.opens):
            raise NotFormatted("internal: no `{` after a block header")
        brace = self.opens[k]
        self.chunks.append(_Chunk("open", depth, lines, brace + 1, top))
        return brace

    def close(self, depth: int, brace: int, top: str = "") -> None:
        if brace not in self.match:
            raise NotFormatted("internal: unmatched `{`")
        self.chunks.append(_Chunk("close", depth, [(0, "}")], self.match[brace] + 1, top))

    def block(self, depth: int, head: str, header, items, each, top: str = "") -> None:
        brace = self.open(depth, head, header, top)
        for it in items:
            each(depth + 1, it)
        self.close(depth, brace, top)

    # ---- the file -------------------------------------------------------------------------------
    def run(self) -> str:
        h = self.tree.header
        self.leaf(0, f"hydro {h.version.text}", h, kind="head")
        for d in self.tree.decls:
            self.decl(d)
        self.chunks.append(_Chunk("eof", 0, [], len(self.text)))
        self.place_comments()
        return self.render()

    def decl(self, d) -> None:
        if isinstance(d, A.RulesetDecl):
            return self.leaf(0, f"ruleset {d.name.name} version {d.version.raw}", d, top="line")
        if isinstance(d, A.UseDecl):
            return self.leaf(0, f"use {d.path.raw}", d, top="line")
        if isinstance(d, A.SettingsDecl):
            return self.block(0, "settings", d.span, d.items, self.setting, top="block")
        head, header, items, each = self.decl_parts(d.decl if isinstance(d, A.Amend) else d)
        if isinstance(d, A.Amend):
            head = f"{d.how} {head}"
        self.block(0, head, header, items, each, top="block")

    def decl_parts(self, d):
        """(head line, header nodes, items, item printer) of a block declaration."""
        heads = {
            A.MetricDecl: lambda: (f"metric {d.name.name}", (d.name,), d.items, self.item),
            A.ChannelDecl: lambda: (f"channel {d.name.name}", (d.name,), d.items, self.item),
            A.SiteDecl: lambda: (f"site {d.uid.name}{_title(d.title)}", (d.uid, d.title), d.items, self.site_item),
            A.RecipeDecl: lambda: (f"recipe {d.name.name}{_title(d.title)}", (d.name, d.title), d.phases, self.phase),
            A.ProfileDecl: lambda: (f"profile {d.name.name}", (d.name,), d.items, self.setting),
            A.AlertDecl: lambda: (f"alert {d.code.name}{_scope(d.scope)}", (d.code, d.scope), d.items, self.alert_item),
            A.GuardDecl: lambda: (f"guard {d.name.name}{_scope(d.scope)}", (d.name, d.scope), d.denies, self.deny),
            A.MachineDecl: lambda: (f"machine {d.name.name}", (d.name,), d.order, self.machine_item),
            A.RuleDecl: lambda: (f"rule {d.name.name}", (d.name,), d.items, self.rule_item),
            A.TestDecl: lambda: (f"test {d.name.raw}", (d.name,), d.items, self.test_item),
        }
        make = heads.get(type(d))
        if make is None:
            raise NotFormatted(f"internal: cannot format a {type(d).__name__}")
        return make()

    # ---- items --------------------------------------------------------------------------------------
    def item(self, depth: int, it) -> None:
        if isinstance(it, A.Setting):
            night = f" night {self.value(it.night)}" if it.night is not None else ""
            return self.leaf(depth, f"{it.key.name} {self.value(it.value)}{night}", it)
        if not isinstance(it, A.Item):
            raise NotFormatted(f"internal: unexpected {type(it).__name__} in a block")
        self.leaf(depth, self.item_text(it), it)

    def item_text(self, it: A.Item, keyword: bool = True) -> str:
        """`keyword v1 glue v2 ...`: the words between values (`..`, `,`, `at`...) come from the source."""
        out = it.keyword if keyword else ""
        prev = None
        for v in it.values:
            if prev is not None:
                for word in self.glue(prev, v):
                    out += word if word == "," else " " + word
            out += (" " if out else "") + self.value(v)
            prev = v
        return out

    def glue(self, a, b) -> list[str]:
        lo, hi = self.end_of(a), self.off(b.span.line, b.span.column)
        between = re.sub(r"#[^\n]*", "", self.text[lo:hi])
        words = _GLUE.findall(between)
        if any(not (w in ("..", ",") or w[0].isalpha() or w[0] == "_") for w in words):
            raise NotFormatted("internal: unexpected text between the values of an item")
        return words

    def value(self, v) -> str:
        if isinstance(v, A.Ident):
            return v.name
        if isinstance(v, A.String):
            return v.raw
        if isinstance(v, A.Literal):
            return v.text
        if isinstance(v, A.Item):
            return self.item_text(v, keyword=False)
        return render(v)

    def site_item(self, depth: int, it) -> None:
        if isinstance(it, A.GreenhouseDecl):
            head = f"greenhouse {it.uid.name}{_title(it.title)}"
            written = sorted(it.zones + it.nodes, key=lambda x: (x.span.line, x.span.column))
            return self.block(depth, head, (it.uid, it.title), written, self.site_item)
        if isinstance(it, A.NodeDecl):
            return self.block(depth, f"node {it.uid.name}", (it.uid,), it.items, self.item)
        if isinstance(it, A.ZoneDecl):
            head = f"zone {it.uid.name}{_title(it.title)}"
            return self.block(depth, head, (it.uid, it.title), it.items, self.site_item)
        if isinstance(it, A.Binding):
            key = f" channel {it.channel_key.name}" if it.channel_key else ""
            if it.is_metric:
                unit = f" unit {self.value(it.unit)}" if it.unit else ""
                return self.leaf(depth, f"{it.name.name} from {it.node.name}{key}{unit}", it)
            return self.leaf(depth, f"{it.name.name} on {it.node.name}{key}", it)
        if isinstance(it, A.SettingsDecl):
            return self.block(depth, "settings", it.span, it.items, self.setting)
        if isinstance(it, A.Light):
            return self.leaf(depth, f"light {it.start.text} to {it.end.text}", it)
        self.item(depth, it)

    def phase(self, depth: int, p: A.PhaseDecl) -> None:
        to = f" {p.day_to.text}" if p.day_to else ""
        head = f"phase {p.name.name} days {p.day_from.text} ..{to}"
        self.block(depth, head, (p.name, p.day_from, p.day_to), p.targets, self.setting)

    def setting(self, depth: int, s) -> None:
        if isinstance(s, A.Section):
            return self.block(depth, s.key.name, (s.key,), s.items, self.setting)
        if isinstance(s, A.Window):
            text = f"window {s.start.text} to {s.end.text}"
            if s.off:
                text += " off"
            else:
                text += f" duty {s.duty.text} period {s.period.text}"
            if s.max_off is not None:
                text += f" max_off {s.max_off.text}"
            return self.leaf(depth, text, s)
        if isinstance(s, A.TargetRange):
            night = f" night {s.night[0].text} .. {s.night[1].text}" if s.night else ""
            return self.leaf(depth, f"{s.name.name} {s.low.text} .. {s.high.text}{night}", s)
        self.item(depth, s)

    def alert_item(self, depth: int, it) -> None:
        if isinstance(it, A.AlertCond):
            kw = "clear when" if it.clear else "when"
            return self.leaf(depth, self.cond_lines(depth, "", kw, it.cond, ""), it)
        self.item(depth, it)

    def deny(self, depth: int, d: A.Deny) -> None:
        tail = f" raise {d.raises.name}" if d.raises else ""
        self.leaf(depth, self.cond_lines(depth, f"deny {d.reason.raw}", "when", A.Cond(d.expr, None, d.span), tail), d)

    def rule_item(self, depth: int, it) -> None:
        if isinstance(it, A.RuleWhen):
            return self.leaf(depth, self.cond_lines(depth, "", "when", it.cond, ""), it)
        if isinstance(it, A.RuleDo):
            return self.actions(depth, [(0, "do")], it.actions, it)
        self.item(depth, it)

    def test_item(self, depth: int, it) -> None:
        if isinstance(it, A.TestBlock):
            return self.block(depth, it.keyword, self.off(it.span.line, it.span.column), it.items, self.item)
        if isinstance(it, A.Expectation):
            no = "no " if it.negated else ""
            fields = "".join(" " + self.item_text(f) for f in it.fields)
            return self.leaf(depth, f"expect at {it.at.text} {no}{it.kind} {it.name.name}{fields}", it)
        self.item(depth, it)

    # ---- machines ----------------------------------------------------------------------------------
    def machine_item(self, depth: int, it) -> None:
        if isinstance(it, A.StateDecl):
            return self.block(depth, f"state {it.name.name}", (it.name,), it.order, self.state_item)
        self.item(depth, it)

    def state_item(self, depth: int, it) -> None:
        if isinstance(it, A.Transition):
            return self.transition(depth, it)
        if isinstance(it, A.Item) and it.keyword in ("enter", "exit"):
            return self.actions(depth, [(0, it.keyword)], it.values[0], it)
        self.item(depth, it)

    def transition(self, depth: int, t: A.Transition) -> None:
        tr = t.trigger
        if t.is_fail:
            lines = [(0, f"fail after {_duration(tr.after)}")]
        elif tr.after is not None:
            lines = [(0, f"go {t.target.name} after {_duration(tr.after)}")]
        else:
            head = f"go {t.target.name}"
            if tr.every is not None:
                head += f" every {render(tr.every)} at {render(tr.at)}"
            lines = self.cond_lines(depth, head, "when", tr.cond, "") if tr.cond else [(0, head)]
        if t.actions is None:
            return self.leaf(depth, lines, t)
        extra, last = lines[-1]
        self.actions(depth, lines[:-1] + [(extra, last + " do")], t.actions, t)

    def actions(self, depth: int, lines, acts: A.Actions, node) -> None:
        """`lines` end with the keyword (`enter`, `do`); the actions follow, braced."""
        start = self.off(acts.span.line, acts.span.column)
        end = self.end_of(acts)
        extra, last = lines[-1]
        if len(acts.items) < 2 and not (acts.braced and self.has_comment(start, end)):
            inner = f"{{ {_action(acts.items[0])} }}" if acts.items else "{}"
            one = f"{last} {inner}"
            if not acts.items or not acts.items[0].then or len(INDENT) * (depth + extra) + len(one) <= WIDTH:
                return self.leaf(depth, lines[:-1] + [(extra, one)], node)
            # a long dose group alone: one statement, its lines inside braces it may not have had
            body = [(extra + 1 + x, t) for x, t in _action_lines(acts.items[0], depth + extra + 1)]
            return self.leaf(depth, lines[:-1] + [(extra, last + " {"), *body, (extra, "}")], node)
        self.open(depth, lines[:-1] + [(extra, last + " {")], start)
        for a in acts.items:
            self.leaf(depth + 1, _action_lines(a, depth + 1), a)
        self.close(depth, start)

    # ---- conditions -----------------------------------------------------------------------------------
    def cond_lines(self, depth: int, head: str, kw: str, cond: A.Cond, tail: str) -> list[tuple[int, str]]:
        """A statement with a condition, wrapped when longer than WIDTH (see the module docstring)."""
        hold = f" for {_duration(cond.hold)}" if cond.hold else ""
        whole = f"{kw} {render(cond.expr)}{hold}{tail}"
        one = f"{head} {whole}" if head else whole
        if len(INDENT) * depth + len(one) <= WIDTH:
            return [(0, one)]
        lines = [(0, head)] if head else []
        level = 1 if head else 0
        e = cond.expr
        if not (isinstance(e, A.Binary) and e.op in ("and", "or")):
            return lines + [(level, whole)]
        op = e.op
        parts = [render(x, _PREC[op]) for x in _chain(e, op)]
        cur, cur_level = f"{kw} {parts[0]}", level
        for p in parts[1:]:
            if len(INDENT) * (depth + cur_level) + len(cur) + len(op) + len(p) + 2 <= WIDTH:
                cur += f" {op} {p}"
                continue
            lines.append((cur_level, cur))
            cur, cur_level = f"{op} {p}", level + 1
        lines.append((cur_level, cur + hold + tail))
        return lines

    # ---- comments and blank lines ------------------------------------------------------------------
    def place_comments(self) -> None:
        chunks = self.chunks
        prev_end = 0
        for ch in chunks:
            ch.start = self.skip(prev_end) if ch.kind != "eof" else len(self.text)
            if ch.kind != "eof" and ch.end <= ch.start:
                raise NotFormatted("internal: chunks out of source order")
            prev_end = ch.end
        starts = [ch.start for ch in chunks]
        for c in self.tree.comments:
            p = self.off(c.span.line, c.span.column)
            i = max(0, bisect.bisect_right(starts, p) - 1)
            ch = chunks[i]
            if p < ch.end:
                ch.leading.append((c, True))
            elif (
                not self.starts_line(p)
                and self.line_of(p) == self.line_of(ch.end - 1)
                and ch.trailing is None
                and ch.kind != "eof"
            ):
                ch.trailing = c
            else:
                chunks[min(i + 1, len(chunks) - 1)].leading.append((c, False))

    def render(self) -> str:
        out: list[str] = []
        last_top = "head"
        chunks = self.chunks
        i = 0
        while i < len(chunks):
            ch = chunks[i]
            prev = chunks[i - 1] if i else None
            elems = self.elements(ch)
            for k, (blank, depth, text) in enumerate(elems):
                if k == 0 and prev is not None:
                    if prev.kind == "open" or (ch.kind == "close" and len(elems) == 1):
                        blank = False
                    elif ch.top and ch.kind != "close" and not (ch.top == "line" and last_top == "line"):
                        blank = blank if last_top == "head" else True
                if blank and out:
                    out.append("")
                if text is not None:
                    out.append(INDENT * depth + text)
            if ch.kind == "eof":
                break
            lines = [INDENT * (ch.depth + extra) + t for extra, t in ch.lines]
            nxt = chunks[i + 1]
            if ch.kind == "open" and nxt.kind == "close" and ch.trailing is None and not nxt.leading:
                lines[-1] += "}"  # an empty block: `name {}`
                ch, i = nxt, i + 1
            if ch.trailing is not None:
                lines[-1] += "  " + ch.trailing.text
            out.extend(lines)
            if ch.top and ch.kind != "open":
                last_top = ch.top
            i += 1
        return "\n".join(out) + "\n"

    def elements(self, ch: _Chunk) -> list[tuple[bool, int, str | None]]:
        """(blank line before?, depth, comment text) of its leading comments, then (blank?, -, None) for it."""
        depth = ch.depth + 1 if ch.kind == "close" else ch.depth
        own = self.starts_line(ch.start) and self.blank_above(ch.start) if ch.kind != "eof" else False
        out, moved_seen = [], False
        for c, moved in ch.leading:
            p = self.off(c.span.line, c.span.column)
            if moved:
                blank, own, moved_seen = (own if not moved_seen else False), False, True
            else:
                blank = self.starts_line(p) and self.blank_above(p)
            out.append((blank, depth, c.text))
        out.append((own and ch.kind != "close", ch.depth, None))
        return out


def _title(s: A.String | None) -> str:
    return f" {s.raw}" if s is not None else ""


def _scope(s: A.Scope | None) -> str:
    if s is None:
        return ""
    names = ", ".join(n.name for n in s.names)
    return f" for each {names}" if s.each else f" for {names}"


def _duration(d: A.Literal | A.Path) -> str:
    """A duration as written: a literal, or the setting it is (language 1.2)."""
    return d.dotted if isinstance(d, A.Path) else d.text


def _then(t: A.DoseThen) -> str:
    return f"then {t.channel.name} {render(t.amount)} after {_duration(t.wait)}"


def _action_lines(a: A.Action, depth: int) -> list[tuple[int, str]]:
    """An action on its line; a dose group longer than WIDTH gets each `then` and its `guarded by`
    on lines of their own, one level deeper."""
    one = _action(a)
    if not a.then or len(INDENT) * depth + len(one) <= WIDTH:
        return [(0, one)]
    lines = [(0, f"dose {a.target.name} {render(a.amount)}")]
    lines += [(1, _then(t)) for t in a.then]
    if a.guards:
        lines.append((1, "guarded by " + ", ".join(g.name for g in a.guards)))
    return lines


def _action(a: A.Action) -> str:
    if a.verb == "record":
        return "record " + ", ".join(n.name for n in a.names)
    if a.target is None:
        return a.verb
    text = f"{a.verb} {a.target.name}"
    if a.amount is not None:
        text += f" for {render(a.amount)}" if a.verb == "start" else f" {render(a.amount)}"
    for t in a.then:
        text += " " + _then(t)
    if a.guards:
        text += " guarded by " + ", ".join(g.name for g in a.guards)
    return text
