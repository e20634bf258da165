"""Rule sets for the language 1.2 engine tests, built from the fixture's model objects."""

from __future__ import annotations

import itertools
from dataclasses import replace
from types import SimpleNamespace

from hydro_rules.lang import model as M
from hydro_rules.lang import units as U
from hydro_rules.lang.source import Span

from .harness import Zone, fixture_ruleset

SP = Span("v12.hydro", 1, 1, 1, 2)
_n = itertools.count()
_BASE = None


def base():
    global _BASE
    if _BASE is None:
        _BASE = fixture_ruleset().ruleset
    return _BASE


def const(v, dim=U.NUMBER):
    return M.Const(v, dim, SP)


def cond(expr, hold=0.0, hold_setting=None):
    return M.Condition(expr, hold, SP, "test", hold_setting)


TRUE = cond(const(True, U.BOOL))


def ruleset(zone=None, *, drop=(), rules=None, machines=None, recipes=None, schema=None, alerts=None):
    """The fixture's rule set, zone zn-t changed by `zone` (field -> value), its channels in `drop`
    left unbound, and the given rules/machines/recipes/settings schema/alerts merged in. Each gets a
    content hash of its own: compiled rule sets are cached by version."""
    rs = base()
    z = rs.zone("zn-t")
    changes = dict(zone or {})
    if drop:
        changes["channels"] = {k: v for k, v in z.channels.items() if k not in drop}
    z2 = replace(z, **changes)
    sites = []
    for s in rs.sites:
        ghs = tuple(replace(g, zones=tuple(z2 if x.uid == "zn-t" else x for x in g.zones)) for g in s.greenhouses)
        sites.append(replace(s, greenhouses=ghs))
    return replace(
        rs,
        content_hash=f"v12t{next(_n):08d}" + rs.content_hash,
        sites=sites,
        rules={**rs.rules, **(rules or {})},
        machines={**rs.machines, **(machines or {})},
        recipes={**rs.recipes, **(recipes or {})},
        alerts={**rs.alerts, **(alerts or {})},
        settings_schema=schema if schema is not None else dict(rs.settings_schema),
    )


def zone(rs, **kw) -> Zone:
    return Zone(SimpleNamespace(ruleset=rs, diags=SimpleNamespace(items=[])), **kw)
