"""A zone runner while the database is away: the daemon ends what it waits on by itself, because
the service, which writes `timeout`, cannot reach the database either."""

from __future__ import annotations

from hydro_rules import messages as W
from hydro_rules.daemon.zone import ZoneRunner


def _runner_with_an_unanswered_off(ruleset, t0: float) -> ZoneRunner:
    z = ZoneRunner(ruleset, "zt-2", zone_id=1, greenhouse_uid="gt-1")
    z.st = z.prog.new_state(t0)
    c = z.st.channels["pump_recirc"]
    c.pending["zt-2-off"], c.intents["zt-2-off"] = t0, "off"
    c.pending["zt-2-acked"], c.intents["zt-2-acked"] = t0, "off"
    c.acked.append("zt-2-acked")
    return z


def test_an_unanswered_command_is_overdue_at_its_response_timeout_not_before(test_site):
    t0 = 1_000_000.0
    z = _runner_with_an_unanswered_off(test_site, t0)
    limit = z.prog.S["commands.response_timeout"]
    assert z.overdue(t0 + limit - 1) == []  # one tick before
    assert [(r.cmd_id, r.status) for r in z.overdue(t0 + limit)] == [("zt-2-off", W.TIMEOUT)]  # at
    assert [r.cmd_id for r in z.overdue(t0 + limit + 1)] == ["zt-2-off"]  # after; an ACKed one never


def test_the_timeout_frees_the_channel_for_an_on(test_site):
    """An unanswered OFF holds back every ON of its channel; once timed out, it no longer does."""
    t0 = 1_000_000.0
    z = _runner_with_an_unanswered_off(test_site, t0)
    now = t0 + z.prog.S["commands.response_timeout"]
    for resp in z.overdue(now):
        z.prog.apply_response(z.st, resp, now)
    c = z.st.channels["pump_recirc"]
    assert "zt-2-off" not in c.pending and "zt-2-off" not in c.intents
    assert c.failures == [now]  # counted once, as the service's timeout would be
    assert z.overdue(now + 1) == []
