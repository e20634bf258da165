"""Digital twin of one zone: reservoir, loop, pumps, dosers and the nodes that drive and watch them.

Pure and deterministic: no I/O, no wall clock; a reading's noise is a function of the
seed, the sensor and the instant, and the twin integrates on its own instants (a grid
anchored at the start, its events, level crossings), so the same zone, seed, start,
faults, config and command stream give the same readings and responses whatever
instants the caller advances to. `bounds()`, `next_change()` and `has_output()` tell an
event-driven caller how far readings can move and until when (`forecast`). The dry-run
loop calls::

    twin = ZoneTwin(zone, ruleset, seed=1, start=t0, faults=[parse_fault("leak@36h")], firmware="hydro2")
    twin.advance(t); twin.drain_telemetry(); twin.drain_responses(); twin.send(wire_command)

Node firmware (`firmware=`, or TwinConfig.firmware; ValueError for another name):
`"hydro2"` (default) is the relay firmware of hydro 2.0 — a `set_relay {state:false}`
holds OPEN whatever its `duration_ms`, a `set_relay {state:true, duration_ms}` is a
timed run (at most 300 s, DONE at its end), and a reboot opens every relay, so an NC
pump stands still until it is switched on; `"bounded-off"` is the older model — an
OFF with `duration_ms` falls back to the fail-safe default by itself and a reboot
leaves every output at its fail-safe default. See `nodes`.

Pump nodes report their flow as a rate (TwinConfig.pump_flow "rate", the default)
or, like hydro 2.0 pump nodes, as the 0/1 `flow_flag` metric of pumps that declare
one ("flag": 1 while the pump moves water, 0 while it does not).

Physics (docs/twin.md has the equations): the zone's plant comes from its `plant.*`
settings (`plant`; the built-in defaults, then its profile's, its own, its recipe
phase's), a TwinConfig field that is set overriding one. The reservoir
(`zone.reservoir_l` = 100 %) starts at the profile's `levels.target` with solution at
the recipe phase's target midpoints; the crop takes up plant.uptake (% of the
reservoir per day, more by day and in warm air) with its salts at
plant.uptake_ec_ratio of the solution's concentration, the surface evaporates
plant.evaporation (more from warm water), so EC rises between water changes; the
roots push pH up plant.ph_drift a day; the fill line delivers water at
plant.source_ec / source_ph / source_temp (or, plant.fill_premixed, ready solution at
the recipe midpoints); a dose moves EC or pH by its concentrate's strength per ml per
100 L, mixing in with a 3-minute time constant while the solution circulates (2 h
when still); the loop holds 3 % of the reservoir while the recirculation pump moves
water and drains back when it stops; the solution's temperature follows the air
(plant.air_temp with its daily swing, peaking at plant.air_temp_peak local time) with
plant.temp_time_constant, a heater/chiller holding its setpoint. Pumps move
plant.recirc_flow, plant.drain_flow, plant.fill_flow (L/min); a pump whose intake is
dry moves nothing and draws less current. Nodes: see `nodes`. Readings: every online
node publishes one Reading per metric per `advance` (ts = that time) with Gaussian
noise (pH 0.01, EC 0.01 mS/cm, level 0.2 %, current 10 mA, flow 0.2 L/min; a stopped
flow and a dry EC probe read exactly 0), a 16-bit quantile table indexed by a hash of
the instant and the sensor; see `sensors` for which node reports what.

Faults, `KIND@OFFSET[:ARGS]`: OFFSET is a duration from the run start (`6d`, `36h`,
`90m`, `1h30m`, `45s`, `0`); ARGS are comma-separated, a bare word is the target,
`key=value` a parameter. Every kind takes `for=DURATION` (the fault then clears);
otherwise it lasts to the end of the run. Offsets beyond the run never fire.

- `dry_reservoir[:rate=L/h]` - a burst line: the reservoir loses 600 L/h (default)
  until it is empty; water the loop returns and any fill are lost the same way.
- `leak[:rate=L/h]` - a slow loss, 12 L/h by default (10 %/h of 120 L).
- `stuck_relay[:CHANNEL]` - the contacts stay closed: the load runs whatever is
  commanded; the node answers as if it switched. Default pump_recirc.
- `overcurrent[:CHANNEL][,current=mA]` - the pump draws `current` (default 2300 mA)
  whenever powered. A start (run_pump, set_relay state=true) is answered ACK then
  ERROR `overcurrent` with details {channel, current_ma, threshold_ma} and the node
  opens the contacts; an NC pump at its fail-safe default still runs and draws it.
  Default pump_recirc.
- `no_flow[:CHANNEL]` - a blocked line: the pump is powered and draws its normal
  current, but flow is 0 and no water moves. Default pump_recirc.
- `sensor_frozen[:METRIC][,node=UID]` - the sensor repeats the reading it had when
  it froze, with fresh timestamps. Default ph.
- `sensor_dead[:METRIC][,node=UID]` - the sensor stops reporting. Default water_level.
- `node_offline[:NODE|CHANNEL]` - the node publishes nothing, answers nothing and
  loses the commands sent to it; it keeps power, its outputs and its timers (a
  timed run still ends; under bounded-off an OFF with duration_ms still expires).
  Default: the node of pump_recirc.
- `controller_crash[:for=D]` - power is lost: every node's outputs drop to their
  fail-safe default (the NC pump runs, NO pumps stop, pending runs and timers die);
  nodes are silent for D (default 30m) and lose commands; then they reboot and
  report again. Under hydro2 the reboot opens every relay: the NC pump stops until
  it is switched on; under bounded-off the outputs stay at their defaults.
- `heater_stuck`, `heater_failed`, `chiller_stuck`, `chiller_failed` - the heater
  (chiller) runs whatever the temperature, or gives no heat (cooling). The zone
  must have the device (`plant.heater yes`, `plant.chiller yes`).

A malformed spec raises FaultError from parse_fault; a target the zone does not have
raises FaultError from check_fault and from ZoneTwin(). `applies_to(fault, zone)` tells
whether a fault that names a node (node_offline:UID, node=UID) belongs to that zone.
"""

from .config import DEFAULT_FIRMWARE, DEFAULT_ROLES, FIRMWARES, TwinConfig
from .faults import KINDS, Fault, FaultError, applies_to, check_fault, parse_duration, parse_fault
from .twin import ZoneTwin

__all__ = [
    "DEFAULT_FIRMWARE",
    "DEFAULT_ROLES",
    "FIRMWARES",
    "KINDS",
    "Fault",
    "FaultError",
    "TwinConfig",
    "ZoneTwin",
    "applies_to",
    "check_fault",
    "parse_duration",
    "parse_fault",
]
