"""The site daemon's settings: the `[daemon]` table of the kit's config file, HYDRO_* variables, options.

Read with `service.config.load_settings(model=DaemonSettings, table="daemon")`, the same loader
the service uses for its own table.
"""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..service.config import Settings, client_id_is_the_login


def _default_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class DaemonSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = Settings.model_fields["database_url"].default
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    #: the daemon's broker login when mqtt_url has one (the kit's broker makes a client's id its login)
    mqtt_client_id: str = "hydro-daemon"
    #: who this daemon is in the `daemons` table, the decision log and the zone locks
    daemon_id: str = Field(default_factory=_default_id)
    tick_s: float = Field(1.0, gt=0)
    heartbeat_every_s: float = Field(2.0, gt=0)
    takeover_every_s: float = Field(2.0, gt=0)
    #: where decisions wait on local disk while the database is down
    queue_dir: str = "/var/lib/hydro-rules/daemon"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9108, ge=0, le=65535)  # 0: no /metrics
    broker_down_alert_s: float = Field(30, ge=0)
    db_down_alert_s: float = Field(10, ge=0)
    node_silent_after_s: float = Field(120, gt=0)
    reload_poll_s: float = Field(2.0, gt=0)
    log_format: Literal["text", "json"] = "text"
    max_zones: int | None = Field(None, ge=1)  # None: a fair share of the site's zones
    command_publish_timeout_s: float = Field(2.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _client_id_is_the_login(cls, values):
        return client_id_is_the_login(cls, values)
