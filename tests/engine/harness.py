"""Drive one zone program tick by tick with telemetry written by the test."""

from __future__ import annotations

from pathlib import Path

from hydro_rules.engine.api import compiled
from hydro_rules.lang.loader import load
from hydro_rules.messages import CommandResponse
from hydro_rules.sim.timeouts import TimeoutSweep

ROOT = Path(__file__).resolve().parents[2]
T0 = 1767225600.0  # 2026-01-01T00:00:00Z
#: A site daemon evaluates every second and renews a 1-minute run_pump once half of it is left;
#: these tests evaluate once a minute, so their pumps run 3-minute chunks to run on unbroken the
#: same way (a chunk renewed only as it ends has stopped, see test_run_chunk). None: the profile's.
HARNESS_RUN_CHUNK_S = 180.0

NODES = {"ph": "nd-ph", "ec": "nd-ec", "temp_water": "nd-ec", "water_level": "nd-level"}
PUMP_NODES = {"pump_recirc": "nd-pump", "pump_drain": "nd-drain", "pump_fill": "nd-fill"}
NOMINAL = {"pump_recirc": (20.0, 1100.0), "pump_drain": (30.0, 900.0), "pump_fill": (30.0, 900.0)}


def fixture_ruleset(tmp_path: Path | None = None, profile: str | None = None):
    """The standard rules with the test site of rules/tests (zone zn-t), optionally another profile text."""
    extra = [ROOT / "rules" / "tests" / "fixture.hydro"]
    if profile is not None:
        p = tmp_path / "override.hydro"
        p.write_text("hydro 1\n" + profile)
        extra = [_fixture_with(tmp_path, profile)]
    loaded = load(ROOT / "rules", extra=extra)
    return loaded


def _fixture_with(tmp_path: Path, profile: str) -> Path:
    text = (ROOT / "rules" / "tests" / "fixture.hydro").read_text()
    start = text.index("profile test_standard {")
    end = text.index("profile test_by_age {")
    p = tmp_path / "fixture.hydro"
    p.write_text(text[:start] + profile + "\n\n" + text[end:])
    return p


class Zone:
    """zn-t of the fixture: set readings, tick, answer commands."""

    def __init__(
        self,
        loaded=None,
        zone: str = "zn-t",
        start: float = T0,
        answer: str | None = "DONE",
        run_chunk: float | None = HARNESS_RUN_CHUNK_S,
    ):
        self.loaded = loaded or fixture_ruleset()
        assert self.loaded.ruleset is not None, self.loaded.diags.items
        self.run_chunk = run_chunk
        self.prog = self.program(zone)
        self.now = start
        self.state = self.prog.new_state(start)
        self.readings: dict = {}
        self.snap: dict = {}
        self.answer = answer  # how nodes answer commands: DONE, an error code, or None (silence)
        self.commands: list = []
        self.alerts: list = []
        self.transitions: list = []
        self.events: list = []
        self.refusals: list = []
        self._answers: list = []
        #: plays the service, which times out commands left without an answer; None: nobody does
        self.sweep: TimeoutSweep | None = TimeoutSweep(self.prog.S["commands.response_timeout"])

    def program(self, zone: str = "zn-t"):
        """A new program for the zone (a new daemon process), with the harness's run chunk."""
        prog = compiled(self.loaded.ruleset).program(zone)
        if self.run_chunk is not None:
            prog.S = {**prog.S, "commands.run_chunk": self.run_chunk}
        return prog

    def set(self, **values) -> Zone:
        """Readings reported every tick from now on (None: the sensor stops reporting)."""
        for k, v in values.items():
            self.readings[k] = v
        return self

    def _key(self, name: str):
        if "__" in name:
            ch, attr = name.split("__")
            metric = {"flow": "flow_rate", "current": "pump_current", "flow_flag": "flow_present"}[attr]
            return PUMP_NODES[ch], metric
        return NODES[name], name

    def tick(self, minutes: float = 1.0):
        """Advance time by `minutes` one tick at a time; returns the decisions of the last tick."""
        steps = max(1, int(round(minutes)))
        d = None
        for _ in range(steps):
            self.now += 60.0
            d = self.step()
        return d

    def step(self):
        for ch, node in PUMP_NODES.items():  # pumps do as they are told unless the test says otherwise
            c = self.state.channels.get(ch)
            on = c is not None and c.is_on
            if f"{ch}__flow" not in self.readings:
                self.snap[(node, "flow_rate")] = (NOMINAL[ch][0] if on else 0.0, self.now)
            if f"{ch}__current" not in self.readings:
                self.snap[(node, "pump_current")] = (NOMINAL[ch][1] if on else 3.0, self.now)
        for name, v in self.readings.items():
            if v is not None:  # None: the sensor is silent, its last reading ages
                self.snap[self._key(name)] = (v, self.now)
        answers, self._answers = self._answers, []
        if self.sweep is not None:
            self.sweep.heard(answers, self.now)
            answers += self.sweep.due(self.now)
        for r in answers:
            self._collect(self.prog.apply_response(self.state, r, self.now))
        d = self.prog.evaluate(self.state, self.snap, self.now)
        self._collect(d)
        if self.sweep is not None:
            self.sweep.sent(d.commands)
        for c in d.commands:
            if self.answer == "DONE":
                self._answers.append(CommandResponse(c.cmd_id, "DONE", self.now))
            elif self.answer is not None:
                self._answers.append(
                    CommandResponse(
                        c.cmd_id,
                        "ERROR",
                        self.now,
                        self.answer,
                        {"channel": c.channel, "current_ma": 2300, "threshold_ma": 1500},
                    )
                )
        return d

    def _collect(self, d) -> None:
        self.commands += d.commands
        self.alerts += d.alerts
        self.transitions += d.transitions
        self.events += d.events
        self.refusals += d.refusals

    # ---- views -------------------------------------------------------------------------
    @property
    def machine_state(self) -> str:
        return self.state.machines["water_cycle"]

    def active(self) -> set:
        return {(a.code, a.channel) for a in self.state.alerts.values() if a.status == "active"}

    def cmds(self, channel: str) -> list:
        return [c for c in self.commands if c.channel == channel]

    def is_on(self, channel: str) -> bool:
        return self.state.channels[channel].is_on

    def run_until(self, state: str, limit_min: int = 24 * 60) -> None:
        """Tick until the water cycle is in `state`; fail after `limit_min` minutes."""
        for _ in range(limit_min):
            self.tick()
            if self.machine_state == state:
                return
        raise AssertionError(f"never reached {state}; in {self.machine_state}")

    def tick_until_on(self, channel: str, limit_min: int = 30) -> bool:
        for _ in range(limit_min):
            self.tick()
            if self.is_on(channel):
                return True
        return False

    def reset(self, who="op", why="fixed"):
        d = self.prog.reset(self.state, who, why, self.now)
        self._collect(d)
        return d


def healthy(z: Zone, level: float = 90.0) -> Zone:
    """Readings of a zone in good shape; pumps report flow and current as they are commanded."""
    return z.set(ph=6.0, ec=1.4, temp_water=21.0, water_level=level)
