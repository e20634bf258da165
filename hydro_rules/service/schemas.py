"""Request bodies of the HTTP API (pydantic): what is validated, with field paths in 422 answers."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

UID = r"^[A-Za-z0-9_.:-]{1,128}$"


class TelemetrySampleIn(BaseModel):
    """One sample (§2.1). `ts`: ISO 8601 (UTC if no offset) or epoch seconds. NaN and infinities
    are accepted here and rejected per sample with a reason."""

    model_config = ConfigDict(extra="forbid")

    node_uid: str = Field(pattern=UID)
    zone_uid: str | None = Field(None, pattern=UID)
    metric_type: str = Field(min_length=1, max_length=64)
    value: float
    ts: float | datetime
    channel: str | None = Field(None, pattern=UID)
    raw: dict | None = None

    def epoch(self) -> float:
        if isinstance(self.ts, datetime):
            ts = self.ts if self.ts.tzinfo else self.ts.replace(tzinfo=UTC)
            return ts.timestamp()
        return self.ts


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samples: list[TelemetrySampleIn]


class RegisterRequest(BaseModel):
    """§6.3: find or create the node, bind it to the zone, store firmware facts and validate it."""

    model_config = ConfigDict(extra="forbid")

    node_uid: str = Field(pattern=UID)
    zone_uid: str | None = Field(None, pattern=UID)
    firmware_version: str | None = Field(None, max_length=64)
    hardware_revision: str | None = Field(None, max_length=64)
    hardware_id: str | None = Field(None, max_length=128)
    node_type: str | None = Field(None, max_length=32)
    secret: str | None = Field(
        None, min_length=32, max_length=256, description="command signing key; generated when absent"
    )


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zone_uid: str = Field(pattern=UID)
    channel: str = Field(pattern=UID, description="the zone's channel name, e.g. pump_drain")
    cmd: str = Field(pattern=r"^[a-z_]{1,32}$")
    params: dict = Field(default_factory=dict)
    reason: str | None = Field(None, max_length=500)
    override: bool = Field(False, description="bypass a refusing guard (needs scope `override` and a reason)")

    @field_validator("reason")
    @classmethod
    def _strip(cls, v: str | None) -> str | None:
        return v.strip() or None if v is not None else None


class ResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500, description="what was fixed")
    by: str | None = Field(None, max_length=100, description="the operator's name; the token's name when absent")


class SimulateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: float = Field(gt=0)
    tick_s: float = Field(60, ge=1, le=3600)
    seed: int = 0
    start: str | None = None
    faults: list[str] = Field(default_factory=list, max_length=50)
