"""Text to syntax tree, with positioned, plain-language syntax errors.

The Lark LALR parser builds AST nodes directly (an inline transformer), so no
intermediate parse tree is made. When a file has syntax errors it is parsed
again one top-level declaration at a time, so that every broken declaration
is reported, not only the first.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path as FsPath

from lark import (
    Lark,
    Token,
    Transformer,
    UnexpectedCharacters,
    UnexpectedInput,
    UnexpectedToken,
)

from . import ast as A
from . import units as U
from .diagnostics import Diagnostics, did_you_mean
from .source import Span

SUPPORTED_VERSIONS = (1,)
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_NESTING = 64
#: deepest expression tree accepted; checks and the engine walk expressions recursively
MAX_EXPR_DEPTH = 100

DECL_KEYWORDS = (
    "ruleset",
    "use",
    "metric",
    "channel",
    "site",
    "recipe",
    "profile",
    "alert",
    "guard",
    "machine",
    "rule",
    "test",
)
_DECL_LINE = re.compile(r"^(?:%s)\b" % "|".join(DECL_KEYWORDS), re.M)
_HEADER = re.compile(r"[ \t]*hydro[ \t]+(\S+)[ \t]*(#.*)?$")


def grammar_text(version: int) -> str:
    """The Lark grammar of a language version, from the wheel or the source tree."""
    name = f"hydro_v{version}.lark"
    packaged = resources.files("hydro_rules").joinpath("grammar", name)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (FsPath(__file__).resolve().parents[2] / "grammar" / name).read_text(encoding="utf-8")


class ExpressionTooDeep(Exception):
    """An expression nests deeper than MAX_EXPR_DEPTH (raised while building, caught per declaration)."""

    def __init__(self, span: Span):
        super().__init__(span)
        self.span = span


class _Builder(Transformer):
    """Builds AST nodes while the parser reduces; `path` and offsets are set per parse."""

    def __init__(self):
        super().__init__(visit_tokens=False)
        self.file_path = "<text>"
        self.line_offset = 0
        self.comments: list[A.Comment] = []
        self.depth: dict[int, int] = {}  # id of an expression node -> depth of its tree

    def on_comment(self, tok: Token) -> None:
        self.comments.append(A.Comment(str(tok).rstrip(), self.sp(tok)))

    # ---- helpers -------------------------------------------------------------
    def sp(self, tok: Token) -> Span:
        off = self.line_offset
        return Span(self.file_path, tok.line + off, tok.column, tok.end_line + off, tok.end_column)

    def span_of(self, first, last=None) -> Span:
        a = first.span if not isinstance(first, Token) else self.sp(first)
        if last is None or last is first:
            return a
        b = last.span if not isinstance(last, Token) else self.sp(last)
        return a.to(b)

    def ident(self, tok: Token) -> A.Ident:
        return A.Ident(str(tok), self.sp(tok))

    def string(self, tok: Token) -> A.String:
        raw = str(tok)
        value = re.sub(r"\\(.)", r"\1", raw[1:-1])
        return A.String(value, raw, self.sp(tok))

    def literal(self, tok: Token, negative: bool = False, minus: Token | None = None) -> A.Literal:
        t, text = tok.type, str(tok)
        sign = -1.0 if negative else 1.0
        if t == "NUMBER":
            value, dim = float(text), U.NUMBER
        elif t == "QUANTITY":
            value, dim, unit = U.parse_quantity(text)
            num = text[: len(text) - len(unit)].rstrip()
            text = f"{num} {unit}" if unit not in ("%",) else f"{num}{unit}"
        elif t == "PERCENT":
            value, dim = float(text[:-1]), U.PERCENT
        elif t == "DURATION":
            value, dim = U.parse_duration(text), U.DURATION
        elif t == "TIME":
            h, m = text.split(":")
            value, dim = int(h) * 3600.0 + int(m) * 60.0, U.TIME_OF_DAY
        elif t == "DATE":
            value, dim = text, "date"
        elif t == "DATETIME":
            value, dim = text, "datetime"
        else:  # pragma: no cover - grammar and builder disagree
            raise AssertionError(t)
        span = self.sp(tok)
        if negative:
            text = "-" + text
            if minus is not None:
                span = self.sp(minus).to(span)
        if isinstance(value, float):
            value = sign * value
        return A.Literal(value, dim, text, span)

    def bool_lit(self, tok: Token) -> A.Literal:
        return A.Literal(str(tok) == "yes", U.BOOL, str(tok), self.sp(tok))

    def _value(self, x):
        """A setting or field value: tokens become literals, strings or names."""
        if not isinstance(x, Token):
            return x
        if x.type == "STRING":
            return self.string(x)
        if x.type in ("NAME", "UID"):
            return self.ident(x)
        return self.literal(x)

    def split_title(self, rest):
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING":
            return self.string(rest[0]), rest[1:]
        return None, rest

    # ---- file and manifest ---------------------------------------------------------
    def start(self, c):
        return c

    def decls(self, c):
        return c

    def header(self, c):
        lit = self.literal(c[0])
        return A.Header(lit, lit.span)

    def ruleset_decl(self, c):
        return A.RulesetDecl(self.ident(c[0]), self.string(c[1]), self.span_of(c[0], c[1]))

    def use_decl(self, c):
        s = self.string(c[0])
        return A.UseDecl(s, s.span)

    def _item(self, keyword, c):
        vals = tuple(self._value(x) for x in c)
        if not vals:
            raise AssertionError(keyword)
        return A.Item(keyword, vals, self.span_of(vals[0], vals[-1]))

    # ---- metrics and channels ------------------------------------------------------
    def metric_decl(self, c):
        name = self.ident(c[0])
        items = tuple(c[1:])
        return A.MetricDecl(name, items, name.span if not items else name.span.to(items[-1].span))

    def unit(self, c):
        return self.ident(c[0])

    def metric_unit(self, c):
        return A.Item("unit", (c[0],), c[0].span)

    def metric_range(self, c):
        return A.Item("range", (c[0], c[1]), c[0].span.to(c[1].span))

    def metric_stale(self, c):
        return self._item("stale after", c)

    def metric_alias(self, c):
        return self._item("alias", c)

    def metric_text(self, c):
        return self._item("text", c)

    def channel_decl(self, c):
        name = self.ident(c[0])
        items = tuple(c[1:])
        return A.ChannelDecl(name, items, name.span if not items else name.span.to(items[-1].span))

    def channel_kind(self, c):
        return self._item("kind", c)

    def channel_fail_safe(self, c):
        return self._item("fail_safe", c)

    def channel_current(self, c):
        return self._item("current", c)

    def channel_flow(self, c):
        return self._item("flow", c)

    def channel_measures(self, c):
        return self._item("measures", c)

    def channel_moves_level(self, c):
        return self._item("moves_level", c)

    channel_text = metric_text

    # ---- sites -----------------------------------------------------------------
    def uid(self, c):
        return self.ident(c[0])

    def site_decl(self, c):
        uid = c[0]
        title, items = self.split_title(c[1:])
        return A.SiteDecl(uid, title, tuple(items), uid.span)

    def site_timezone(self, c):
        return self._item("timezone", c)

    def greenhouse_decl(self, c):
        uid = c[0]
        title, zones = self.split_title(c[1:])
        return A.GreenhouseDecl(uid, title, tuple(zones), uid.span)

    def zone_decl(self, c):
        uid = c[0]
        title, items = self.split_title(c[1:])
        return A.ZoneDecl(uid, title, tuple(items), uid.span)

    def zone_profile(self, c):
        return self._item("profile", c)

    def zone_recipe(self, c):
        return self._item("recipe", c)

    def zone_planted(self, c):
        return self._item("planted", c)

    def zone_reservoir(self, c):
        return self._item("reservoir", c)

    def zone_bind_channel(self, c):
        name = self.ident(c[0])
        key = self.ident(c[2]) if len(c) > 2 else None
        end = key or c[1]
        return A.Binding(name, c[1], key, False, name.span.to(end.span))

    def zone_bind_metric(self, c):
        name = self.ident(c[0])
        return A.Binding(name, c[1], None, True, name.span.to(c[1].span))

    # ---- recipes and profiles ------------------------------------------------------------
    def recipe_decl(self, c):
        name = self.ident(c[0])
        title, phases = self.split_title(c[1:])
        return A.RecipeDecl(name, title, tuple(phases), name.span)

    def phase_decl(self, c):
        name = self.ident(c[0])
        day_from = self.literal(c[1])
        rest = c[2:]
        day_to = None
        if rest and isinstance(rest[0], Token):
            day_to = self.literal(rest[0])
            rest = rest[1:]
        return A.PhaseDecl(name, day_from, day_to, tuple(rest), name.span.to((day_to or day_from).span))

    def target_range(self, c):
        name = self.ident(c[0])
        return A.TargetRange(name, c[1], c[2], name.span.to(c[2].span))

    def target_value(self, c):
        name = self.ident(c[0])
        return A.Setting(name, c[1], name.span.to(c[1].span))

    def profile_decl(self, c):
        name = self.ident(c[0])
        return A.ProfileDecl(name, tuple(c[1:]), name.span)

    def setting_value(self, c):
        key = self.ident(c[0])
        val = self._value(c[1])
        return A.Setting(key, val, key.span.to(val.span))

    def setting_section(self, c):
        key = self.ident(c[0])
        return A.Section(key, tuple(c[1:]), key.span)

    def setting_window(self, c):
        lits = [self.literal(t) for t in c]
        return A.Window(*lits, lits[0].span.to(lits[-1].span))

    # ---- alerts and guards ----------------------------------------------------------------
    def alert_decl(self, c):
        code = self.ident(c[0])
        rest = c[1:]
        scope = None
        if rest and isinstance(rest[0], A.Scope):
            scope, rest = rest[0], rest[1:]
        return A.AlertDecl(code, scope, tuple(rest), code.span)

    def scope_each(self, c):
        n = self.ident(c[0])
        return A.Scope(True, (n,), n.span)

    def scope_channels(self, c):
        names = tuple(self.ident(t) for t in c)
        return A.Scope(False, names, names[0].span.to(names[-1].span))

    def alert_source(self, c):
        return self._item("source", c)

    def alert_severity(self, c):
        return self._item("severity", c)

    alert_text = metric_text

    def _cond(self, c):
        expr, hold = c[0], (self.literal(c[1]) if len(c) > 1 else None)
        return A.Cond(expr, hold, expr.span.to(hold.span) if hold else expr.span)

    def hold(self, c):
        return c[0]

    def alert_when(self, c):
        cond = self._cond(c)
        return A.AlertCond(False, cond, cond.span)

    def alert_clear(self, c):
        cond = self._cond(c)
        return A.AlertCond(True, cond, cond.span)

    def clear_on_reset(self, c):
        return A.Item("clear on reset", (), self.span_of(c[0], c[-1]))

    def lock_until_reset(self, c):
        return A.Item("lock until reset", (), self.span_of(c[0], c[-1]))

    def alert_on_error(self, c):
        return self._item("on error", c)

    def guard_decl(self, c):
        name = self.ident(c[0])
        return A.GuardDecl(name, c[1], tuple(c[2:]), name.span)

    def deny(self, c):
        reason = self.string(c[0])
        raises = self.ident(c[2]) if len(c) > 2 else None
        return A.Deny(reason, c[1], raises, reason.span.to((raises or c[1]).span))

    # ---- machines ---------------------------------------------------------------------
    def machine_decl(self, c):
        name = self.ident(c[0])
        items = tuple(c[1:])
        initial = tuple(i.values[0] for i in items if isinstance(i, A.Item))
        states = tuple(i for i in items if isinstance(i, A.StateDecl))
        return A.MachineDecl(name, initial, states, items, name.span)

    def machine_initial(self, c):
        return self._item("initial", c)

    def state_decl(self, c):
        name = self.ident(c[0])
        items = tuple(c[1:])
        enter = tuple(i.values[0] for i in items if isinstance(i, A.Item) and i.keyword == "enter")
        exit_ = tuple(i.values[0] for i in items if isinstance(i, A.Item) and i.keyword == "exit")
        trans = tuple(i for i in items if isinstance(i, A.Transition))
        return A.StateDecl(name, enter, exit_, trans, items, name.span)

    def state_enter(self, c):
        return A.Item("enter", (c[0],), c[0].span)

    def state_exit(self, c):
        return A.Item("exit", (c[0],), c[0].span)

    def transition(self, c):
        target = self.ident(c[0])
        actions = c[2] if len(c) > 2 else None
        return A.Transition(target, c[1], actions, False, target.span.to(c[1].span))

    def fail_after(self, c):
        after = self.literal(c[0])
        actions = c[1] if len(c) > 1 else None
        trig = A.Trigger(None, None, None, after, after.span)
        return A.Transition(A.Ident("FAILED", after.span), trig, actions, True, after.span)

    def schedule(self, c):
        return (c[0], c[1])

    def trigger_schedule(self, c):
        every, at = c[0]
        cond = self._cond(c[1:]) if len(c) > 1 else None
        return A.Trigger(every, at, cond, None, every.span.to((cond or at).span))

    def trigger_when(self, c):
        cond = self._cond(c)
        return A.Trigger(None, None, cond, None, cond.span)

    def trigger_after(self, c):
        after = self.literal(c[0])
        return A.Trigger(None, None, None, after, after.span)

    def do_actions(self, c):
        return c[0]

    # ---- actions -------------------------------------------------------------------------
    def actions(self, c):
        items = tuple(x for x in c if not isinstance(x, Token))
        braced = isinstance(c[0], Token)
        return A.Actions(items, braced, self.span_of(c[0], c[-1]))

    def guarded(self, c):
        return tuple(self.ident(t) for t in c)

    def _action(self, verb, c, amount_allowed=False):
        target = self.ident(c[0])
        amount, guards = None, ()
        for x in c[1:]:
            if isinstance(x, tuple):
                guards = x
            else:
                amount = x
        end = guards[-1] if guards else (amount or target)
        return A.Action(verb, target, amount, guards, (), target.span.to(end.span))

    def act_start(self, c):
        return self._action("start", c)

    def act_stop(self, c):
        return self._action("stop", c)

    def act_recirculate(self, c):
        return self._action("recirculate", c)

    def act_release(self, c):
        return self._action("release", c)

    def act_open(self, c):
        return self._action("open", c)

    def act_close(self, c):
        return self._action("close", c)

    def act_dose(self, c):
        return self._action("dose", c)

    def act_raise(self, c):
        return self._action("raise", c)

    def act_resolve(self, c):
        return self._action("resolve", c)

    def act_event(self, c):
        return self._action("event", c)

    def act_record(self, c):
        names = tuple(self.ident(t) for t in c)
        return A.Action("record", None, None, (), names, names[0].span.to(names[-1].span))

    def act_reset_solution(self, c):
        return A.Action("reset solution age", None, None, (), (), self.span_of(c[0], c[-1]))

    # ---- rules ---------------------------------------------------------------------------
    def rule_decl(self, c):
        name = self.ident(c[0])
        return A.RuleDecl(name, tuple(c[1:]), name.span)

    def rule_in(self, c):
        return self._item("in", c)

    def rule_when(self, c):
        cond = self._cond(c)
        return A.RuleWhen(cond, cond.span)

    def rule_do(self, c):
        return A.RuleDo(c[0], c[0].span)

    def rule_repeat(self, c):
        return self._item("repeat every", c)

    # ---- tests ---------------------------------------------------------------------------
    def test_decl(self, c):
        name = self.string(c[0])
        return A.TestDecl(name, tuple(c[1:]), name.span)

    def test_zone(self, c):
        return A.Item("zone", (c[0],), c[0].span)

    def test_start(self, c):
        return self._item("start", c)

    def test_tick(self, c):
        return self._item("tick", c)

    def test_run(self, c):
        return self._item("run", c)

    def _block(self, c):
        items = tuple(x for x in c if not isinstance(x, Token))
        return A.TestBlock(str(c[0]), items, self.span_of(c[0], c[-1]))

    twin_block = given_block = telemetry_block = _block

    def test_series(self, c):
        return self._item("series", c)

    def response(self, c):
        vals = tuple(self.ident(t) for t in c)
        return A.Item("response", vals, self.span_of(c[0], c[-1]))

    def test_respond(self, c):
        channel = self.ident(c[0])
        rest = tuple(self.literal(t) for t in c[2:])
        return A.Item("respond", (channel, c[1], *rest), channel.span.to(c[1].span))

    def test_reset(self, c):
        return self._item("reset at", c)

    def test_expect(self, c):
        at = self.literal(c[0])
        e = c[1]
        return A.Expectation(at, e.kind, e.negated, e.name, e.fields, at.span.to(e.span))

    def twin_fault(self, c):
        return self._item("fault", c)

    def twin_setting(self, c):
        key = self.ident(c[0])
        return A.Setting(key, c[1], key.span.to(c[1].span))

    def given_state(self, c):
        return self._item("state", c)

    def given_solution_age(self, c):
        return self._item("solution age", c)

    def given_solution_value(self, c):
        return self._item("solution", c)

    def given_alert(self, c):
        return self._item("alert", c)

    def sample_key(self, c):
        parts = [self.ident(t) for t in c]
        return A.Path(tuple(parts), parts[0].span.to(parts[-1].span))

    def sample(self, c):
        vals = tuple(self._value(x) for x in c)
        return A.Item("at", vals, self.span_of(vals[0], vals[-1]))

    def _expect(self, kind, c):
        negated = bool(c) and isinstance(c[0], Token) and c[0].type == "NO"
        if negated:
            c = c[1:]
        name = self.ident(c[0])
        fields = tuple(c[1:])
        end = fields[-1] if fields else name
        return A.Expectation(None, kind, negated, name, fields, name.span.to(end.span))

    def expect_state(self, c):
        return self._expect("state", c)

    def expect_alert(self, c):
        return self._expect("alert", c)

    def expect_command(self, c):
        return self._expect("command", c)

    def expect_event(self, c):
        return self._expect("event", c)

    def expect_running(self, c):
        return self._expect("running", c)

    def expect_refused(self, c):
        return self._expect("refused", c)

    def expect_field(self, c):
        key = self.ident(c[0])
        val = self._value(c[1])
        return A.Item(key.name, (val,), key.span.to(val.span))

    # ---- expressions ---------------------------------------------------------------------
    def _deep(self, node, a, b=None):
        """Record the depth of `node`'s tree (children `a`, `b`); refuse trees deeper than
        MAX_EXPR_DEPTH. Called on every operator, so kept to two dict lookups."""
        depth = self.depth
        d = depth.get(id(a), 0)
        if b is not None:
            db = depth.get(id(b), 0)
            if db > d:
                d = db
        d += 1
        if d > MAX_EXPR_DEPTH:
            raise ExpressionTooDeep(node.span)
        depth[id(node)] = d
        return node

    def _fold(self, op, c):
        left = c[0]
        for right in c[1:]:
            left = self._deep(A.Binary(op, left, right, left.span.to(right.span)), left, right)
        return left

    def or_expr(self, c):
        return self._fold("or", c)

    def and_expr(self, c):
        return self._fold("and", c)

    def not_(self, c):
        return self._deep(A.Unary("not", c[1], self.sp(c[0]).to(c[1].span)), c[1])

    def compare(self, c):
        return self._deep(A.Binary(str(c[1]), c[0], c[2], c[0].span.to(c[2].span)), c[0], c[2])

    def is_check(self, c):
        word = self.ident(c[1])
        return self._deep(A.IsCheck(c[0], word, c[0].span.to(word.span)), c[0])

    def _arith(self, c):
        return self._deep(A.Binary(str(c[1]), c[0], c[2], c[0].span.to(c[2].span)), c[0], c[2])

    add = sub = mul = div = _arith

    def neg(self, c):
        operand = c[1]
        if isinstance(operand, A.Literal) and isinstance(operand.value, float):
            return A.Literal(-operand.value, operand.dim, "-" + operand.text, self.sp(c[0]).to(operand.span))
        return self._deep(A.Unary("-", operand, self.sp(c[0]).to(operand.span)), operand)

    def call(self, c):
        func = self.ident(c[0])
        args = tuple(c[1:])
        node = A.Call(func, args, func.span.to(args[-1].span) if args else func.span)
        deepest = max(args, key=lambda x: self.depth.get(id(x), 0)) if args else None
        return self._deep(node, deepest) if deepest is not None else node

    def path(self, c):
        parts = tuple(self.ident(t) for t in c)
        return A.Path(parts, parts[0].span.to(parts[-1].span))

    def number(self, c):
        return self.literal(c[0])

    quantity = percent = duration = time_of_day = number

    def yes(self, c):
        return self.bool_lit(c[0])

    no = yes

    def signed(self, c):
        if len(c) == 2:
            return self.literal(c[1], negative=True, minus=c[0])
        return self.literal(c[0])


@cache
def _parser(version: int) -> tuple[Lark, _Builder]:
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


# ---- friendly syntax errors ------------------------------------------------------------
# The parser's error states are turned into plain words: what was found, what could
# come there instead (the tokens the parser really accepts there, few and grouped), and
# a hint for the mistakes people make most (typos of keywords, units without their
# number, `=` for `==`, quotes pasted from a word processor, a missing `}`).

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
        for m in _BRACKETS.finditer(line):
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


_BRACKETS = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#.*|[(){}]')


def _syntax_error(lark: Lark, err: UnexpectedInput, path: str, line_offset: int, chunk: str, diags: Diagnostics):
    """Report one syntax error of a declaration (`chunk`, starting after `line_offset` lines)."""
    lines = chunk.split("\n")
    rel = err.line if isinstance(err.line, int) and err.line > 0 else 1
    col = err.column if isinstance(err.column, int) and err.column > 0 else 1
    line = rel + line_offset
    text = lines[rel - 1] if rel <= len(lines) else ""
    at = Span(path, line, col, line, col + 1)
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
        unit_hint = _unit_hint(word)
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
                _unit_hint(word) or "units: " + ", ".join(U.UNITS),
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


def _unit_hint(word: str) -> str | None:
    return did_you_mean(word, U.UNITS) or next(
        (f"did you mean `{u}`?" for u in U.UNITS if u.lower() == word.lower()), None
    )


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
            Span(path, oline + line_offset, ocol, oline + line_offset, ocol + 1),
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
        Span(path, line, col, line, col + 1),
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


# ---- entry points ------------------------------------------------------------------------
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
            Span(path, line, col, line, col + 1),
            "save the file with the encoding UTF-8",
        )
        return None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def header_version(text: str, path: str, diags: Diagnostics) -> int | None:
    """The language version from the first line, or None with a diagnostic."""
    first = text.split("\n", 1)[0]
    m = _HEADER.match(first)
    supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
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
            n = text.count("\n", 0, later.start()) + 1
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
    if not raw.isdigit() or int(raw) not in SUPPORTED_VERSIONS:
        spelled = re.fullmatch(r"[vV]?(\d+)(?:\.0+)*", raw)
        hint = (
            f"write `hydro {int(spelled.group(1))}`"
            if spelled and int(spelled.group(1)) in SUPPORTED_VERSIONS
            else f"this hydro-rules reads version {supported}; a newer file needs a newer hydro-rules"
            if raw.isdigit() and int(raw) > latest
            else f"write `hydro {latest}`"
        )
        diags.add(
            "HR002",
            f"language version `{raw}` is not supported; supported versions: {supported}",
            Span(path, 1, col, 1, col + len(raw)),
            hint,
        )
        return None
    return int(raw)


_NESTING_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[(){}]')


def _nesting_error(text: str, path: str, diags: Diagnostics) -> bool:
    """Refuse brackets nested deeper than MAX_NESTING before parsing (brackets inside
    text and comments do not count). A regex walks the brackets only: files can be large."""
    if text.count("(") + text.count("{") < MAX_NESTING:
        return False
    depth = 0
    for m in _NESTING_TOKENS.finditer(text):
        ch = m.group()
        if len(ch) != 1 or ch == '"':
            continue  # a text or a comment
        if ch in "({":
            depth += 1
            if depth > MAX_NESTING:
                at = m.start()
                line = text.count("\n", 0, at) + 1
                col = at - (text.rfind("\n", 0, at) + 1) + 1
                diags.add(
                    "HR006",
                    f"brackets nested more than {MAX_NESTING} deep",
                    Span(path, line, col, line, col + 1),
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
        header, decls, broken = _parse_by_declaration(lark, builder, text, path, diags)
    comments = tuple(sorted(builder.comments, key=lambda c: (c.span.line, c.span.column)))
    builder.comments, builder.depth = [], {}
    return A.File(path, header, decls, comments, broken)


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


_COMMENT_OR_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|(#[^\n]*)')


def _parse_by_declaration(lark, builder, text, path, diags):
    header, decls, broken = None, [], []
    for offset, chunk in _chunks(text):
        builder.line_offset, builder.depth = offset, {}
        mark = len(builder.comments)
        try:
            res = lark.parse(chunk, start="start" if offset == 0 else "decls")
        except (UnexpectedInput, ExpressionTooDeep) as err:
            if isinstance(err, ExpressionTooDeep):
                s = err.span
                diags.add(
                    "HR006",
                    f"expression nested more than {MAX_EXPR_DEPTH} levels deep",
                    Span(path, s.line, s.column, s.line, s.column + 1),
                    "split the condition into simpler ones",
                )
            else:
                _syntax_error(lark, err, path, offset, chunk, diags)
            del builder.comments[mark:]
            _scan_comments(chunk, path, offset, builder.comments)
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


_DECL_NAME = re.compile(r"(?:%s)[ \t]+([\w-]+)" % "|".join(DECL_KEYWORDS))


def _bare_header(text, path):
    first = text.split("\n", 1)[0]
    m = _HEADER.match(first)
    col = first.index(m.group(1)) + 1
    span = Span(path, 1, col, 1, col + len(m.group(1)))
    return A.Header(A.Literal(float(m.group(1)), U.NUMBER, m.group(1), span), span)


def _scan_comments(chunk, path, offset, out):
    """Comments of a declaration that did not parse, so that nothing is lost."""
    for lineno, line in enumerate(chunk.split("\n"), start=offset + 1):
        if "#" not in line:
            continue
        for m in _COMMENT_OR_STRING.finditer(line):
            if m.group(1) is not None:
                c = m.start() + 1
                out.append(A.Comment(m.group(1).rstrip(), Span(path, lineno, c, lineno, c + len(m.group(1)))))


def parse_file(path: str, data: bytes, diags: Diagnostics) -> A.File | None:
    text = decode(data, path, diags)
    if text is None:
        return None
    return parse_text(text, path, diags)


def planted_date(lit: A.Literal) -> date:
    return date.fromisoformat(str(lit.value))
