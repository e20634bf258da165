"""Service configuration: typed, read once, passed down.

Sources, later ones winning: defaults, a TOML file (`--config`, table
`[service]`), environment variables `HYDRO_<FIELD>` (e.g. HYDRO_DATABASE_URL,
HYDRO_MQTT_URL, HYDRO_HTTP_PORT), then command-line options. This module and
the CLI are the only readers of os.environ.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(Exception):
    pass


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = "postgresql://postgres@127.0.0.1:5432/hydro"
    db_pool_size: int = Field(10, ge=1, le=100)

    mqtt_url: str | None = "mqtt://127.0.0.1:1883"  # None: no MQTT door (HTTP only)
    #: the service's broker login when mqtt_url has one (the kit's broker makes a client's id its login,
    #: so that no node can take the ingest's id); otherwise "hydro-ingest"
    mqtt_client_id: str = "hydro-ingest"
    #: how many unacknowledged messages the broker may send us at once (MQTT 5 receive maximum)
    mqtt_receive_maximum: int = Field(1000, ge=1, le=65535)

    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_samples_per_request: int = Field(10_000, ge=1)

    batch_max: int = Field(1000, ge=1)  # MQTT samples written per transaction, at most
    batch_linger_s: float = Field(0.005, ge=0)  # wait this long for a batch to fill
    batch_workers: int = Field(2, ge=1, le=16)

    max_sample_age_s: float = Field(30 * 86400, gt=0)  # older samples are refused
    max_clock_skew_s: float = Field(300, ge=0)  # samples further in the future are refused
    partition_ahead_days: int = Field(7, ge=1)

    aggregate_every_s: float = Field(60, ge=0)  # 0: the service does not aggregate
    water_grace_s: float = Field(30, ge=0)  # a pump run is logged this long after it ended

    command_publish_timeout_s: float = Field(2.0, gt=0)
    #: how often the service times out unanswered commands and re-asserts NC pumps after a restart
    command_sweep_every_s: float = Field(1.0, gt=0, le=60)
    #: the NC-pump dead-man (service/deadman.py): no site daemon counts as alive when none has beaten
    #: within this long; the dead-man then switches each NC pump back ON this margin before its
    #: `max_recirc_off` (counted from the pump's recorded OFF-since) runs out, checking every deadman_every_s
    daemon_dead_after_s: float = Field(10, gt=0)
    deadman_margin_s: float = Field(60, ge=0)
    deadman_every_s: float = Field(1.0, gt=0, le=60)
    simulate_max_days: float = Field(400, gt=0)
    #: engine ticks (days x 86400 / tick_s) one /simulate request may ask for; 100,000 is ~70 days at
    #: 60 s ticks, about 20 s of one core here
    simulate_max_ticks: int = Field(100_000, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _client_id_is_the_login(cls, values):
        return client_id_is_the_login(cls, values)


def client_id_is_the_login(model: type[BaseModel], values):
    """Default the client id to the broker login; refuse one that differs from it (the site's
    broker makes a client's id its login, so that no node can take a service's session)."""
    if not isinstance(values, dict):
        return values
    login = _broker_login(values.get("mqtt_url", model.model_fields["mqtt_url"].default))
    chosen = values.get("mqtt_client_id")
    if login and chosen and chosen != login:
        raise ValueError(
            f"mqtt_client_id {chosen!r} differs from the broker login {login!r} in mqtt_url: the site's broker"
            " uses the login as the client id (use_username_as_clientid); leave mqtt_client_id out"
        )
    if login and not chosen:
        return {**values, "mqtt_client_id": login}
    return values


def _broker_login(url) -> str | None:
    return unquote(urlsplit(url).username or "") or None if isinstance(url, str) else None


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    model: type[BaseModel] = Settings,
    table: str = "service",
    **overrides,
):
    """Settings from a TOML file, HYDRO_* variables and explicit overrides (None values are ignored).

    `model` and `table` choose what is read: the service's `[service]` table into Settings by
    default; the site daemon reads its own table into its own model the same way.
    """
    environ = os.environ if environ is None else environ
    values: dict = {}
    if config_file:
        try:
            data = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read {config_file}: {e}") from e
        values.update(data.get(table, data) if table == "service" else data.get(table, {}))
    for name in model.model_fields:
        key = f"HYDRO_{name.upper()}"
        if key in environ:
            values[name] = environ[key] if environ[key] != "" else None
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return model(**values)
    except ValidationError as e:
        problems = "; ".join(_problem(err) for err in e.errors())
        raise ConfigError(f"bad configuration: {problems}") from e


def _problem(err: dict) -> str:
    """One validation error as `field: message` (a check across fields names none)."""
    where = ".".join(map(str, err["loc"]))
    return f"{where}: {err['msg']}" if where else err["msg"].removeprefix("Value error, ")
