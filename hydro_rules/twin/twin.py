"""ZoneTwin: one zone's water, pumps and nodes, driven by wire commands, publishing readings."""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Sequence

from ..lang.model import RuleSet, Zone
from ..messages import CommandResponse, Reading, WireCommand
from .config import TwinConfig
from .faults import Fault, FaultError, check_fault, fault_node
from .forecast import forecast
from .nodes import EV_CMD, EV_FAULT_OFF, EV_FAULT_ON, EV_TIMER, Load, Node, NodeLogic
from .plant import Plant
from .publish import S_CONST, S_CURRENT, S_FLAG, S_FLOW, SOURCE, Pub, compile_publisher
from .sensors import channel_key, gaussian_table, noise_key, reporters, time_salt
from .water import C_NONE, C_UNFULL, Obs, Water

_INF = float("inf")
#: the twin's own grid, anchored at the run start: segments end at its points (and at the twin's events)
QUIET_STEP_S = 900.0
ACTIVE_STEP_S = 60.0  # while water is filled, drained or lost: the mixing of what comes and goes is lumped per step


class ZoneTwin(NodeLogic):
    __slots__ = (
        "zone", "ruleset", "faults", "_cfg", "_seed", "_salt", "_table", "_water", "_obs", "_nodes", "_loads",
        "_by_name", "_pubs", "_publish", "_publish_snap", "_metered", "_powered", "_events", "_seq", "_t", "_pub_t",
        "_crashed",
        "_readings", "_responses", "_pct", "_probe_pct", "_switch_pct", "_run_ma", "_idle_ma", "_dry_ma",
        "_hydro2", "_plant", "_start", "_tc", "_seg_end", "_seg_kind", "_forecast", "_segments",
    )  # fmt: skip

    def __init__(
        self,
        zone: Zone,
        ruleset: RuleSet,
        *,
        seed: int,
        start: float,
        faults: Sequence[Fault] = (),
        config: TwinConfig | None = None,
        firmware: str | None = None,
    ) -> None:
        """`firmware` ("hydro2" | "bounded-off", see `nodes`) overrides `config.firmware` when given."""
        cfg = config or TwinConfig()
        if firmware is not None:
            cfg = dataclasses.replace(cfg, firmware=firmware)
        cfg.check()
        self._cfg = cfg
        self._hydro2 = cfg.firmware == "hydro2"
        if zone.reservoir_l <= 0:
            raise ValueError(f"zone {zone.uid}: reservoir must hold more than 0 L")
        self.zone, self.ruleset, self.faults = zone, ruleset, tuple(faults)
        self._seed, self._salt = seed, time_salt(seed)
        self._table = gaussian_table()
        for f in self.faults:
            check_fault(f, zone, ruleset, cfg)
        self._events: list = []
        self._seq = 0
        self._t = self._start = self._tc = float(start)
        self._pub_t = -_INF
        self._forecast = None
        self._segments = 0
        self._crashed = 0
        self._readings: list[Reading] = []
        self._responses: list[CommandResponse] = []
        self._plant = Plant(zone, ruleset, cfg, self._t)
        self._build_nodes()
        level = cfg.initial_level_pct
        if level is None:
            level = self._plant.settings.get("levels.target")
            level = 90.0 if level is None else level
        self._water = Water(cfg, zone.reservoir_l, self._plant, self._t, level)
        self._obs = Obs()
        self._pct = 100.0 / zone.reservoir_l
        self._probe_pct, self._switch_pct = cfg.probe_level_pct, cfg.level_switch_pct
        self._run_ma, self._idle_ma, self._dry_ma = cfg.running_ma, cfg.idle_ma, cfg.dry_ma
        self._refresh()
        if self._water.recirc_lps > 0.0:
            self._water.fill_loop()  # the NC pump has been running: the loop is full on top of the target level
        self._plan()
        self._water.copy_to(self._obs)
        self._build_pubs()
        for f in self.faults:
            at = self._t + f.offset_s
            self._push(at, EV_FAULT_ON, f)
            if f.for_s is not None:
                self._push(at + f.for_s, EV_FAULT_OFF, f)

    # ---- construction -----------------------------------------------------------------------
    def _build_nodes(self) -> None:
        cfg, zone, rs = self._cfg, self.zone, self.ruleset
        self._nodes: dict[str, Node] = {uid: Node(uid) for uid in zone.nodes}
        self._loads: list[Load] = []
        self._by_name: dict[str, Load | None] = {}
        lpm = self._flows()
        for name, b in zone.channels.items():
            node = self._nodes[b.node_uid]
            ch = rs.channels.get(name)
            ld = None
            if ch is not None and ch.kind in ("pump", "valve", "doser"):
                role = cfg.role(name, ch)
                ld = Load(name, role, ch.kind, node, b.channel_key, ch.fail_safe == "NC", lpm.get(role, 0.0))
                self._loads.append(ld)
            node.channels[b.channel_key] = ld
            self._by_name[name] = ld

    def _flows(self) -> dict[str, float]:
        p = self._plant
        return {"recirc": p.recirc_lpm, "drain": p.drain_lpm, "fill": p.fill_lpm}

    def _new_day(self, t: float) -> None:
        """A new recipe day: its phase may set other plant values, even other flows."""
        self._plant.refresh(t)
        lpm = self._flows()
        changed = False
        for ld in self._loads:
            new = lpm.get(ld.role, 0.0)
            if new != ld.lpm:
                ld.lpm, changed = new, True
        if changed:
            self._refresh()

    def _build_pubs(self) -> None:
        cfg, rs = self._cfg, self.ruleset
        self._pubs: list[Pub] = []
        metered: dict[int, Load] = {}
        for metric, nodes in reporters(self.zone, rs, cfg).items():
            m = rs.metrics.get(metric)
            lo, hi = (m.low, m.high) if m is not None else (-_INF, _INF)
            for uid, src in nodes:
                kind, loads, const = SOURCE.get(src[0], S_CONST), (), 0.0
                if src[0] in ("current", "flow", "flag"):
                    kind = {"current": S_CURRENT, "flow": S_FLOW, "flag": S_FLAG}[src[0]]
                    loads = tuple(self._by_name[n] for n in src[1] if self._by_name.get(n) is not None)
                    metered.update((id(ld), ld) for ld in loads)
                elif src[0] == "ambient":
                    const = src[1]
                key = channel_key(self.zone, rs, uid, metric)
                pub = Pub(self._nodes[uid], metric, kind, loads, const, cfg.sigma(metric), lo, hi, key)
                pub.noise = noise_key(self._seed, uid, metric, key)
                self._pubs.append(pub)
        self._metered = tuple(metered.values())
        self._activate()

    def _compile(self, pubs, snapshot: bool = False) -> object:
        return compile_publisher(
            pubs, self._obs, self._salt, self._table, self._pct, self._probe_pct, self._switch_pct,
            self._measure_loads, snapshot,
        )  # fmt: skip

    def _activate(self) -> None:
        """Recompile what is published: sensors not dead on nodes not silent."""
        live = [p for p in self._pubs if not p.dead and not self._silent(p.node)]
        self._publish = self._compile(live)
        self._publish_snap = self._compile(live, snapshot=True)

    def _refresh(self) -> None:
        """Flows and the powered set after any change of contacts or faults."""
        w = self._water
        rates = {"recirc": 0.0, "drain": 0.0, "fill": 0.0}
        powered = []
        for ld in self._loads:
            if ld.contact or ld.stuck:
                powered.append(ld)
                if ld.role in rates and not ld.blocked:
                    rates[ld.role] += ld.lpm / 60.0
        self._powered = tuple(powered)
        w.recirc_lps, w.drain_lps, w.fill_lps = rates["recirc"], rates["drain"], rates["fill"]

    # ---- the API of the dry-run loop ------------------------------------------------------------
    def send(self, cmd: WireCommand) -> None:
        """The command reaches its node at cmd.ts (now, if that is already past)."""
        if cmd.ts > self._t:
            self._push(cmd.ts, EV_CMD, cmd)
        else:
            self._settle()
            self._execute(cmd, self._t)
            self._changed()

    def advance(self, now: float, snapshot: dict | None = None) -> None:
        """Run physics and node logic up to `now`, then let every online node publish its readings: as Reading
        objects for drain_telemetry(), or, given a dict `snapshot`, straight into it as
        snapshot[(node, metric)] = (value, now) (cheaper; nothing is left to drain).

        The state at `now` does not depend on the instants advance() was called at before: the twin
        moves its own state from one of its own instants to the next (grid points anchored at the start,
        commands, timers, faults, recipe days, level crossings) and shows the state at `now` in between."""
        if now < self._t:
            raise ValueError(f"time goes backwards: {now} < {self._t}")
        events = self._events
        while events and events[0][0] <= now:
            et, _, kind, a, b, c = heapq.heappop(events)
            self._run_to(et, True)
            if kind == EV_TIMER:
                self._timer(a, b, c, et)
            elif kind == EV_CMD:
                self._execute(a, et)
            else:
                self._fault(a, kind == EV_FAULT_ON, et)
            self._plan()
        self._run_to(now, False)
        self._t = now
        self._view()
        self._forecast = None
        if now > self._pub_t:
            self._pub_t = now
            if snapshot is None:
                self._publish(now, self._readings)
            else:
                self._publish_snap(now, snapshot)

    def bounds(self) -> dict[str, tuple[float, float]]:
        """metric -> (noise_amp, rate): the largest |noise| of a reading, an upper bound of |d true value/dt|
        (per second) from now until next_change(). See `forecast`."""
        return self._forecasted()[0]

    def next_change(self) -> float:
        """The earliest instant >= now at which something bounds() does not cover can happen (an event, a
        new recipe day, a level crossing); inf when nothing can. See `forecast`."""
        return self._forecasted()[1]

    def has_output(self) -> bool:
        """Are readings or command responses waiting to be drained?"""
        return bool(self._readings or self._responses)

    def _forecasted(self) -> tuple[dict[str, tuple[float, float]], float]:
        if self._forecast is None:
            self._forecast = forecast(self)
        return self._forecast

    def drain_telemetry(self) -> list[Reading]:
        out, self._readings = self._readings, []
        return out

    def drain_responses(self) -> list[CommandResponse]:
        out, self._responses = self._responses, []
        return out

    # ---- hooks of the real-time node simulator (nodesim) -----------------------------------------
    def reboot(self, node_uid: str) -> None:
        """The node's firmware restarts now (watchdog, power blip): pending runs and timers die;
        hydro2 opens every relay, bounded-off leaves each output at its fail-safe default."""
        self._settle()
        self._reboot((self._nodes[node_uid],))
        self._changed()

    def node_state(self, node_uid: str) -> str:
        """How the network sees the node: "up", "offline" (no network, power kept: node_offline) or
        "down" (no power: controller_crash)."""
        if self._crashed:
            return "down"
        return "offline" if self._nodes[node_uid].offline else "up"

    def inject(self, fault: Fault, at: float) -> None:
        """Start `fault` at `at` (not before now) instead of at its offset from the start; for its `for`."""
        check_fault(fault, self.zone, self.ruleset, self._cfg)
        at = max(at, self._t)
        self.faults = (*self.faults, fault)
        self._push(at, EV_FAULT_ON, fault)
        if fault.for_s is not None:
            self._push(at + fault.for_s, EV_FAULT_OFF, fault)
        self._forecast = None

    # ---- observables (true state, not readings) ------------------------------------------------
    def running(self, channel: str) -> bool:
        """Is the load of this zone channel powered?"""
        if channel not in self._by_name:
            raise KeyError(f"zone {self.zone.uid} has no channel {channel!r}")
        ld = self._by_name[channel]
        return ld is not None and ld.powered

    def any_running(self, channels) -> bool:
        """Is the load of any of these zone channels (a set of names) powered? Unknown names are not."""
        for ld in self._powered:  # noqa: SIM110 - once per tick of a dry run: no generator
            if ld.name in channels:
                return True
        return False

    def contact(self, channel: str) -> bool:
        """The contact state the node believes it set (differs from running() under stuck_relay)."""
        ld = self._by_name[channel]
        return ld is not None and ld.contact

    @property
    def now(self) -> float:
        return self._t

    @property
    def segments(self) -> int:
        """How many stretches of time the twin has integrated so far (its grid, its events, level crossings):
        its cost, whatever instants advance() was called at."""
        return self._segments

    @property
    def firmware(self) -> str:
        """The node firmware modelled: "hydro2" or "bounded-off"."""
        return self._cfg.firmware

    @property
    def run_seconds(self) -> dict[str, float]:
        """Seconds each relay channel's load has been powered."""
        extra = self._t - self._tc
        return {ld.name: ld.run_s + (extra if ld.powered else 0.0) for ld in self._loads}

    @property
    def dry_seconds(self) -> dict[str, float]:
        """Seconds each relay channel's pump has been powered with nothing to pump: a drain on an empty
        reservoir, a recirculation pump that lost its prime."""
        extra = self._t - self._tc
        dry = self._obs.drain_dry
        return {ld.name: ld.dry_s + self._dry_share(ld, extra, dry) for ld in self._loads}

    @property
    def volume_l(self) -> float:
        """Water in the reservoir (the loop's hold-up excluded)."""
        return self._obs.volume

    @property
    def loop_l(self) -> float:
        return self._obs.loop

    @property
    def level_pct(self) -> float:
        return self._obs.volume * self._pct

    @property
    def ph(self) -> float:
        return self._obs.ph

    @property
    def ec(self) -> float:
        return self._obs.ec

    @property
    def temp_water(self) -> float:
        return self._obs.temp

    @property
    def air_temp(self) -> float:
        """The air around the reservoir (plant.air_temp and its daily swing)."""
        return self._obs.air

    @property
    def heating(self) -> bool:
        """Did the heater warm the solution in the last step?"""
        return self._obs.heating

    @property
    def cooling(self) -> bool:
        """Did the chiller cool the solution in the last step?"""
        return self._obs.cooling

    @property
    def plant(self) -> dict:
        """The zone's settings (plant.* and the rest) as the twin reads them on the current recipe day."""
        return dict(self._plant.settings)

    @property
    def evaporated_l(self) -> float:
        return self._obs.evaporated

    @property
    def taken_up_l(self) -> float:
        """Taken up by the crop."""
        return self._obs.taken_up

    @property
    def drained_l(self) -> float:
        return self._obs.drained

    @property
    def filled_l(self) -> float:
        return self._obs.filled

    @property
    def leaked_l(self) -> float:
        """Lost through leak and dry_reservoir faults."""
        return self._obs.leaked

    @property
    def consumed_l(self) -> float:
        """Taken up by plants and evaporated."""
        return self._obs.consumed

    @property
    def overflow_l(self) -> float:
        return self._obs.overflow

    @property
    def dosed_l(self) -> float:
        return self._obs.dosed

    @property
    def lost_l(self) -> float:
        """Every loss but the drain: leaks, plants and air, overflow."""
        w = self._obs
        return w.leaked + w.consumed + w.overflow

    @property
    def water_balance_l(self) -> float:
        """reservoir + loop + drained + lost - filled - dosed: constant over a run (the water at the start)."""
        return self._obs.total

    # ---- internals ------------------------------------------------------------------------------------
    def _plan(self, unfull: bool = False) -> None:
        """Start a segment at the canonical instant: it ends at the next grid point, recipe day or level crossing."""
        t = self._tc
        if t >= self._plant.next_t:
            self._new_day(t)
        w = self._water
        w.plan(t, unfull)
        step = ACTIVE_STEP_S if (w.fill_lps > 0.0 or w.drain_lps > 0.0 or w.loss_lps > 0.0) else QUIET_STEP_S
        end = self._start + (math.floor((t - self._start) / step + 1e-9) + 1) * step
        if end > self._plant.next_t:
            end = self._plant.next_t
        s, kind = w.crossing(end - t)
        if kind != C_NONE:
            end = t + s
            while not w.reached(end - t, kind):  # the instant as a float lies a hair before the crossing
                end = math.nextafter(end, _INF)
        self._seg_end, self._seg_kind = end, kind

    def _commit(self, t1: float) -> None:
        """Move the canonical state to `t1` within the current segment."""
        dt = t1 - self._tc
        if dt <= 0.0:
            return
        w = self._water
        w.at(dt, w)
        for ld in self._powered:
            ld.run_s += dt
            ld.dry_s += self._dry_share(ld, dt, w.drain_dry)
        self._tc = t1
        self._segments += 1

    def _dry_share(self, ld: Load, dt: float, drain_dry: float) -> float:
        """Seconds of the first `dt` of the current segment the load pumped nothing: a recirculation pump
        without prime, a drain on an empty reservoir (`drain_dry`, as Water.at found it)."""
        if not ld.powered:
            return 0.0
        if ld.role == "recirc" and not self._water.primed:
            return dt
        if ld.role == "drain" and not ld.blocked:
            return drain_dry
        return 0.0

    def _run_to(self, t: float, commit: bool) -> None:
        """Commit every segment that ends by `t`; with `commit`, also the part of the next one up to `t` (the
        caller then plans the next segment)."""
        guard = 0
        while self._seg_end <= t:
            self._commit(self._seg_end)
            self._plan(self._seg_kind == C_UNFULL)
            guard += 1
            if guard > 100_000:  # pragma: no cover - a crossing that does not move time on
                raise RuntimeError(f"twin of {self.zone.uid}: level crossings do not advance at {self._tc}")
        if commit and t > self._tc:
            self._commit(t)  # the caller changes the state here, then plans the next segment

    def _view(self) -> None:
        """The state at now (self._t) into _obs: the canonical state moved on within its segment."""
        s = self._t - self._tc
        if s > 0.0:
            self._water.at(s, self._obs)
        else:
            self._water.copy_to(self._obs)

    def _settle(self) -> None:
        """Make now canonical: a command or reboot changes the state here."""
        self._run_to(self._t, True)

    def _changed(self) -> None:
        self._plan()
        self._view()
        self._forecast = None

    def _fault(self, f: Fault, on: bool, t: float) -> None:
        d = 1 if on else -1
        kind = f.kind
        if kind in ("dry_reservoir", "leak"):
            self._water.loss_lps = max(0.0, self._water.loss_lps + d * f.rate_l_h / 3600.0)
        elif kind in ("stuck_relay", "no_flow", "overcurrent"):
            ld = self._by_name[f.target]
            if kind == "stuck_relay":
                ld.stuck += d
            elif kind == "no_flow":
                ld.blocked += d
            else:
                ld.over += d
                ld.fault_ma = f.current_ma or self._cfg.fault_ma
            self._refresh()
        elif kind in ("sensor_frozen", "sensor_dead"):
            for p in self._pubs:
                if p.metric == f.target and (f.node is None or p.uid == f.node):
                    if kind == "sensor_dead":
                        p.dead += d
                    else:
                        if on and not p.frozen:
                            self._view()
                            sample: list[Reading] = []
                            self._compile([p])(t, sample)
                            p.value = sample[0].value
                        p.frozen += d
        elif kind == "node_offline":
            self._nodes[fault_node(f, self.zone)].offline += d
        elif kind in ("heater_stuck", "heater_failed", "chiller_stuck", "chiller_failed"):
            w = self._water
            setattr(w, kind, max(0, getattr(w, kind) + d))
        elif kind == "controller_crash":
            self._crashed += d
            if on:
                self._reset_outputs(self._nodes.values())  # no power: every output at its fail-safe default
            elif not self._crashed:
                self._reboot(self._nodes.values())  # power is back: the firmware starts
        else:  # pragma: no cover - parse_fault admits only known kinds
            raise FaultError(f"unknown fault kind {kind!r}")
        self._activate()

    def _measure_loads(self) -> None:
        """Current and flow of each metered load as its node's INA209 and flow meter see them now."""
        primed, volume = self._water.primed, self._obs.volume
        for ld in self._metered:
            if not (ld.contact or ld.stuck):
                ld.cur, ld.flow = self._idle_ma, 0.0
                continue
            role = ld.role
            dry = (role == "recirc" and not primed) or (role == "drain" and volume <= 0.0)
            if ld.over:
                ld.cur = ld.fault_ma
            else:
                ld.cur = self._dry_ma if dry else self._run_ma
            ld.flow = 0.0 if dry or ld.blocked or role == "none" else ld.lpm
