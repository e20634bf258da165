"""The inline transformer of the Lark parser: grammar rules to syntax-tree nodes.

It runs while the parser reduces, so no intermediate parse tree is built; spans
come from the tokens (offset by the declaration's first line when a file is
parsed one declaration at a time).
"""

from __future__ import annotations

import re
from functools import partialmethod

from lark import Token, Transformer
from lark.exceptions import UnexpectedInput

from . import ast as A
from . import units as U
from .source import Span

#: deepest expression tree accepted; checks and the engine walk expressions recursively
MAX_EXPR_DEPTH = 100


class ExpressionTooDeep(Exception):
    """An expression nests deeper than MAX_EXPR_DEPTH (raised while building, caught per declaration)."""

    def __init__(self, span: Span):
        super().__init__(span)
        self.span = span


class GluedKeyword(UnexpectedInput):
    """A keyword read off the front of a longer word (`flow_flag` as `flow` `_flag`): not what
    was written, so the text does not parse in this language version."""

    def __init__(self, tok: Token):
        super().__init__(f"`{tok}` is glued to the keyword before it")
        self.line, self.column, self.pos_in_stream = tok.line, tok.column, tok.start_pos
        self.token = tok


class _Builder(Transformer):
    """Builds AST nodes while the parser reduces; `path` and offsets are set per parse."""

    def __init__(self):
        super().__init__(visit_tokens=False)
        self.file_path = "<text>"
        self.line_offset = 0
        self.comments: list[A.Comment] = []
        self.depth: dict[int, int] = {}  # id of an expression node -> depth of its tree
        #: (span, words, version) of each construct of a later language version (1.1, 1.2) built, for
        #: telling a `hydro 1` file it needs 1.1
        self.newer: list[tuple[Span, str, str]] = []

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

    def literal(self, tok: Token, minus: Token | None = None) -> A.Literal:
        """The literal of `tok`, negated when `minus` (the `-` token before it) is given."""
        t, text = tok.type, str(tok)
        if t == "NUMBER":
            value, dim = float(text), U.NUMBER
        elif t == "QUANTITY":
            value, dim, unit = U.parse_quantity(text)
            text = f"{text[: len(text) - len(unit)].rstrip()} {unit}"
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
        if minus is not None:  # only numbers, quantities, percentages and durations are signed
            value, text, span = -value, "-" + text, self.sp(minus).to(span)
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

    def _duration(self, x):
        """A duration as written: a literal, or (language 1.2) the setting path already built."""
        return x if isinstance(x, A.Path) else self.literal(x)

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

    # language 1.1
    def _newer(self, node, words: str, version: str = "1.1"):
        self.newer.append((node.span, words, version))
        return node

    def _keyword_item(self, keyword: str, c):
        """An item whose keyword tokens the grammar keeps (`!rule`): spanned from its first keyword,
        with the values that follow the keyword's words."""
        glue = ("PER", "BY", "COMMA")  # the words between values; the formatter takes them from the source
        vals = tuple(self._value(x) for x in c[len(keyword.split()) :] if not (isinstance(x, Token) and x.type in glue))
        return self._newer(A.Item(keyword, vals, self.span_of(c[0], c[-1])), keyword)

    def metric_frozen(self, c):
        return self._keyword_item("frozen after", c)

    def implausible_zero(self, c):
        return self._keyword_item("implausible zero", c)

    def implausible_at_limits(self, c):
        return self._keyword_item("implausible at limits", c)

    def metric_max_step(self, c):
        return self._keyword_item("max_step", c)

    def channel_affects(self, c):
        return self._keyword_item("affects", c)

    def metric_channel(self, c):
        return self._keyword_item("channel", c)

    def metric_convert(self, c):
        return self._keyword_item("convert", c)

    def channel_flow(self, c):
        keyword, value = c
        if keyword.end_pos == value.start_pos:  # `flow_flag`, which language 1 reads as `flow _flag`
            raise GluedKeyword(value)
        return self._item("flow", [value])

    def channel_flow_flag(self, c):
        return self._keyword_item("flow_flag", c)

    def channel_decl(self, c):
        name = self.ident(c[0])
        items = tuple(c[1:])
        return A.ChannelDecl(name, items, name.span if not items else name.span.to(items[-1].span))

    # ---- sites -----------------------------------------------------------------
    def uid(self, c):
        return self.ident(c[0])

    def site_decl(self, c):
        uid = c[0]
        title, items = self.split_title(c[1:])
        return A.SiteDecl(uid, title, tuple(items), uid.span)

    def greenhouse_decl(self, c):
        uid = c[0]
        title, items = self.split_title(c[1:])
        zones = tuple(i for i in items if isinstance(i, A.ZoneDecl))
        nodes = tuple(i for i in items if isinstance(i, A.NodeDecl))
        return A.GreenhouseDecl(uid, title, zones, uid.span, nodes)

    def node_item(self, c):
        value = self.ident(c[1])
        return A.Item(str(c[0]), (value,), self.sp(c[0]).to(value.span))

    def node_decl(self, c):
        uid = c[0]
        return self._newer(A.NodeDecl(uid, tuple(c[1:]), uid.span), "node")

    def zone_decl(self, c):
        uid = c[0]
        title, items = self.split_title(c[1:])
        return A.ZoneDecl(uid, title, tuple(items), uid.span)

    def zone_bind_channel(self, c):
        name = self.ident(c[0])
        key = self.ident(c[2]) if len(c) > 2 else None
        end = key or c[1]
        return A.Binding(name, c[1], key, False, name.span.to(end.span))

    def zone_bind_metric(self, c):
        name = self.ident(c[0])
        return A.Binding(name, c[1], None, True, name.span.to(c[1].span))

    def zone_bind_reading(self, c):
        """`ec from nd-ec-1 channel ec_sensor unit uS/cm` (language 1.1): tokens kept, so that the
        words after the node tell a channel key from a unit."""
        name, node = self.ident(c[0]), c[2]
        key = unit = None
        rest = list(c[3:])
        while rest:
            word, value = str(rest[0]), rest[1]
            if word == "channel":
                key = self.ident(value)
            else:
                unit = self._value(value)
            rest = rest[2:]
        end = unit or key
        binding = A.Binding(name, node, key, True, name.span.to(end.span), unit)
        return self._newer(binding, f"{name.name} from {node.name} " + ("channel" if key else "unit"))

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

    def _cond(self, c):
        expr, hold = c[0], (self._duration(c[1]) if len(c) > 1 else None)
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

    def _action(self, verb, c):
        target = self.ident(c[0])
        amount, guards = None, ()
        for x in c[1:]:
            if isinstance(x, tuple):
                guards = x
            else:
                amount = x
        end = guards[-1] if guards else (amount or target)
        return A.Action(verb, target, amount, guards, (), target.span.to(end.span))

    def act_record(self, c):
        names = tuple(self.ident(t) for t in c)
        return A.Action("record", None, None, (), names, names[0].span.to(names[-1].span))

    def act_reset_solution(self, c):
        return A.Action("reset solution age", None, None, (), (), self.span_of(c[0], c[-1]))

    # ---- rules ---------------------------------------------------------------------------
    def rule_decl(self, c):
        name = self.ident(c[0])
        return A.RuleDecl(name, tuple(c[1:]), name.span)

    def rule_when(self, c):
        cond = self._cond(c)
        return A.RuleWhen(cond, cond.span)

    def rule_do(self, c):
        return A.RuleDo(c[0], c[0].span)

    # ---- tests ---------------------------------------------------------------------------
    def test_decl(self, c):
        name = self.string(c[0])
        return A.TestDecl(name, tuple(c[1:]), name.span)

    def test_zone(self, c):
        return A.Item("zone", (c[0],), c[0].span)

    def _block(self, c):
        items = tuple(x for x in c if not isinstance(x, Token))
        return A.TestBlock(str(c[0]), items, self.span_of(c[0], c[-1]))

    twin_block = given_block = telemetry_block = _block

    def response(self, c):
        vals = tuple(self.ident(t) for t in c)
        return A.Item("response", vals, self.span_of(c[0], c[-1]))

    def test_respond(self, c):
        channel = self.ident(c[0])
        rest = tuple(self.literal(t) for t in c[2:])
        return A.Item("respond", (channel, c[1], *rest), channel.span.to(c[1].span))

    def test_expect(self, c):
        at = self.literal(c[0])
        e = c[1]
        return A.Expectation(at, e.kind, e.negated, e.name, e.fields, at.span.to(e.span))

    def twin_setting(self, c):
        key = self.ident(c[0])
        return A.Setting(key, c[1], key.span.to(c[1].span))

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

    def expect_field(self, c):
        key = self.ident(c[0])
        val = self._value(c[1])
        return A.Item(key.name, (val,), key.span.to(val.span))

    # ---- language 1.2 ---------------------------------------------------------------------

    def _newer12(self, node, words: str):
        return self._newer(node, words, "1.2")

    def settings_decl(self, c):
        items = tuple(x for x in c if not isinstance(x, Token))
        return self._newer12(A.SettingsDecl(items, self.sp(c[0])), "settings")

    zone_settings = settings_decl

    def site_light(self, c):
        start, end = self.literal(c[1]), self.literal(c[3])
        return self._newer12(A.Light(start, end, self.sp(c[0]).to(end.span)), "light")

    def zone_light(self, c):
        word = c[0]
        if str(word) != "light":
            raise GluedKeyword(c[1])  # `NAME 06:00`: nothing else reads a time after a zone item's name
        start, end = self.literal(c[1]), self.literal(c[2])
        return self._newer12(A.Light(start, end, self.sp(word).to(end.span)), "light")

    def setting_window_max_off(self, c):
        start, end, duty, period, max_off = (self.literal(t) for t in c)
        w = A.Window(start, end, duty, period, start.span.to(max_off.span), max_off=max_off)
        return self._newer12(w, "max_off")

    def setting_window_off(self, c):
        start, end = self.literal(c[1]), self.literal(c[3])
        return self._newer12(A.Window(start, end, None, None, start.span.to(self.sp(c[4])), off=True), "off")

    def target_range_night(self, c):
        name = self.ident(c[0])
        low, high, nlow, nhigh = c[1:]
        return self._newer12(A.TargetRange(name, low, high, name.span.to(nhigh.span), (nlow, nhigh)), "night")

    def target_value_night(self, c):
        name = self.ident(c[0])
        return self._newer12(A.Setting(name, c[1], name.span.to(c[2].span), c[2]), "night")

    def phase_section(self, c):
        key = self.ident(c[0])
        return self._newer12(A.Section(key, tuple(c[1:]), key.span), f"{key.name} {{ ... }}")

    def hold_setting(self, c):
        return self._newer12(c[0], f"for {c[0].dotted}")

    def fail_after_setting(self, c):
        after = c[0]
        actions = c[1] if len(c) > 1 else None
        trig = A.Trigger(None, None, None, after, after.span)
        t = A.Transition(A.Ident("FAILED", after.span), trig, actions, True, after.span)
        return self._newer12(t, f"fail after {after.dotted}")

    def trigger_after_setting(self, c):
        after = c[0]
        return self._newer12(A.Trigger(None, None, None, after, after.span), f"after {after.dotted}")

    def rule_repeat_setting(self, c):
        return self._newer12(A.Item("repeat every", (c[0],), c[0].span), f"repeat every {c[0].dotted}")

    def dose_then(self, c):
        channel = self.ident(c[0])
        wait = self._duration(c[2])
        return A.DoseThen(channel, c[1], wait, channel.span.to(wait.span))

    def act_dose_group(self, c):
        target = self.ident(c[0])
        amount = c[1]
        then = tuple(x for x in c[2:] if isinstance(x, A.DoseThen))
        guards = next((x for x in c[2:] if isinstance(x, tuple)), ())
        end = guards[-1] if guards else then[-1]
        action = A.Action("dose", target, amount, guards, (), target.span.to(end.span), then)
        return self._newer12(action, "then")

    def amend_decl(self, c):
        how, decl = c
        name = decl.code if isinstance(decl, A.AlertDecl) else decl.name
        node = A.Amend(str(how), decl, self.sp(how).to(name.span))
        return self._newer12(node, f"{how} {_AMEND_KINDS[type(decl)]}")

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
            return self.literal(c[1], minus=c[0])
        return self.literal(c[0])


_AMEND_KINDS = A.AMENDABLE

# ---- rules built alike: one table each, not a method each ------------------------------------------
#: rule -> the keyword of the `Item` it makes of its tokens (`kind pump`, `stale after 5m`)
_ITEM_RULES = {
    "metric_stale": "stale after",
    "metric_alias": "alias",
    "metric_text": "text",
    "channel_text": "text",
    "alert_text": "text",
    "channel_kind": "kind",
    "channel_fail_safe": "fail_safe",
    "channel_current": "current",
    "channel_measures": "measures",
    "channel_moves_level": "moves_level",
    "site_timezone": "timezone",
    "zone_profile": "profile",
    "zone_recipe": "recipe",
    "zone_planted": "planted",
    "zone_reservoir": "reservoir",
    "alert_source": "source",
    "alert_severity": "severity",
    "alert_on_error": "on error",
    "machine_initial": "initial",
    "rule_in": "in",
    "rule_repeat": "repeat every",
    "test_start": "start",
    "test_tick": "tick",
    "test_run": "run",
    "test_series": "series",
    "test_reset": "reset at",
    "twin_fault": "fault",
    "given_state": "state",
    "given_solution_age": "solution age",
    "given_solution_value": "solution",
    "given_alert": "alert",
}
#: rule -> the verb of the `Action` it makes
_ACTION_RULES = {
    "act_start": "start",
    "act_stop": "stop",
    "act_recirculate": "recirculate",
    "act_release": "release",
    "act_open": "open",
    "act_close": "close",
    "act_dose": "dose",
    "act_raise": "raise",
    "act_resolve": "resolve",
    "act_event": "event",
}
#: rule -> the kind of the `Expectation` it makes
_EXPECT_RULES = {
    "expect_state": "state",
    "expect_alert": "alert",
    "expect_command": "command",
    "expect_event": "event",
    "expect_running": "running",
    "expect_refused": "refused",
}
for _rule, _keyword in _ITEM_RULES.items():
    setattr(_Builder, _rule, partialmethod(_Builder._item, _keyword))
for _rule, _verb in _ACTION_RULES.items():
    setattr(_Builder, _rule, partialmethod(_Builder._action, _verb))
for _rule, _kind in _EXPECT_RULES.items():
    setattr(_Builder, _rule, partialmethod(_Builder._expect, _kind))
