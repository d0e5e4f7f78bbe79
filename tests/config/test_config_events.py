"""`[events]` and a tenant's `callback_key_hosts` in tenants.toml: loaded, documented, refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_server_connectwise.config import ConfigError, EventsConfig, load_config

from support.paths import EXAMPLE_CONFIG

TENANT = """
[tenants.acme]
company_id = "acme"
client_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"
site = "api-na.myconnectwise.net"
"""


def load(tmp_path: Path, text: str):
    path = tmp_path / "tenants.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_the_event_store_sits_beside_the_audit_log_unless_configured(tmp_path):
    config = load(tmp_path, '[audit]\npath = "logs/audit.jsonl"\n' + TENANT)
    assert config.events_path == tmp_path / "logs" / "events.sqlite3"
    config = load(tmp_path, '[events]\npath = "kept/ev.db"\nretention_days = 3\nmax_events_per_tenant = 500\n' + TENANT)
    assert config.events_path == tmp_path / "kept" / "ev.db"  # relative to the config file
    assert (config.events.retention_days, config.events.max_events_per_tenant) == (3, 500)


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ("retention_days = 0", "[events]: key 'retention_days': Input should be greater than or equal to 1"),
        ("max_events_per_tenant = 10", "key 'max_events_per_tenant'"),
        ('path = ""', "[events]: key 'path': must be a non-empty string"),
        ("keep = 3", "[events]: key 'keep': unknown key"),
    ],
)
def test_a_wrong_events_table_is_one_line_naming_the_key(tmp_path, table, says):
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, f"[events]\n{table}\n" + TENANT)
    assert says in str(refused.value) and "\n" not in str(refused.value)


def test_callback_key_hosts_are_host_names_in_one_spelling(tmp_path):
    config = load(
        tmp_path,
        TENANT + 'callback_key_hosts = ["NA.myconnectwise.net", "cw.example.com:8443", "na.myconnectwise.net"]\n',
    )
    assert config.tenants["acme"].callback_key_hosts == ("na.myconnectwise.net", "cw.example.com:8443")


@pytest.mark.parametrize(
    "hosts", ['["https://na.myconnectwise.net"]', '["na.myconnectwise.net/key"]', '"na.myconnectwise.net"']
)
def test_a_key_host_that_is_no_host_name_is_refused(tmp_path, hosts):
    with pytest.raises(ConfigError, match="tenant 'acme': key 'callback_key_hosts'"):
        load(tmp_path, TENANT + f"callback_key_hosts = {hosts}\n")


def test_the_example_documents_the_events_table_and_key_hosts():
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    assert "# [events]" in text and "# callback_key_hosts = " in text
    for key in EventsConfig.model_fields:
        assert f"# {key} = " in text, key
