"""Configuration is typed and layered: file, then HYDRO_* variables, then options."""

from pathlib import Path

import pytest

from hydro_rules.service.config import ConfigError, load_settings

KIT = Path(__file__).resolve().parents[2] / "runtime" / "hydro-rules.toml"


def test_the_kits_example_configuration_loads():
    s = load_settings(KIT, environ={})
    assert s.mqtt_client_id == "hydro-ingest" and s.mqtt_receive_maximum == 1000 and s.http_port == 8080


def test_environment_beats_file_and_options_beat_environment(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[service]\nhttp_port = 9000\ndatabase_url = "postgresql://file/db"\n')
    env = {"HYDRO_HTTP_PORT": "9100", "HYDRO_MQTT_URL": ""}
    s = load_settings(f, environ=env)
    assert (s.http_port, s.database_url, s.mqtt_url) == (9100, "postgresql://file/db", None)
    assert load_settings(f, environ=env, http_port=9200, database_url=None).http_port == 9200


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[service]\nhttp_prot = 1\n", {}, "http_prot"),
        ("", {"HYDRO_HTTP_PORT": "eighty"}, "http_port"),
        ("[service\n", {}, "cannot read"),
    ],
)
def test_bad_configuration_says_what_is_wrong(tmp_path, text, env, message):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(f, environ=env)


def test_the_mqtt_client_id_is_the_broker_login():
    """The kit's broker replaces a client's id by its login (use_username_as_clientid): the service's id is
    its login, by default, and a different one is refused rather than silently ignored by the broker."""
    env = {"HYDRO_MQTT_URL": "mqtt://hydro-daemon:pw@127.0.0.1:1883"}
    assert load_settings(environ=env).mqtt_client_id == "hydro-daemon"
    assert load_settings(environ={}).mqtt_client_id == "hydro-ingest"  # no login: the ingest's usual id
    with pytest.raises(ConfigError, match="differs from the broker login 'hydro-daemon'"):
        load_settings(environ={**env, "HYDRO_MQTT_CLIENT_ID": "hydro-ingest"})
