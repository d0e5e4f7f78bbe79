"""`[state]`: a Redis URL (or none: embedded), its prefix, the environment override, and refusals that never
show the URL's password."""

from __future__ import annotations

import pytest

from config.test_config import ACME, error_for, write
from mcp_server_connectwise.config import StateConfig, load_config
from mcp_server_connectwise.config.models import STATE_URL_ENV

PASSWORD = "s3cret-pass"


@pytest.fixture(autouse=True)
def no_state_url_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STATE_URL_ENV, raising=False)


def test_without_a_state_table_the_state_is_embedded(tmp_path):
    assert load_config(write(tmp_path, ACME)).state == StateConfig(url=None)


def test_a_redis_url_and_prefix_are_read_and_the_password_is_never_shown(tmp_path):
    text = f'[state]\nurl = "rediss://app:{PASSWORD}@redis.internal:6380/2"\nprefix = "psa-prod"\n{ACME}'
    state = load_config(write(tmp_path, text)).state
    assert (state.url, state.prefix) == (f"rediss://app:{PASSWORD}@redis.internal:6380/2", "psa-prod")
    assert state.shown_url == "rediss://redis.internal:6380/2"
    assert PASSWORD not in repr(state) and PASSWORD not in repr(load_config(write(tmp_path, text)))


def test_the_environment_overrides_the_url_and_keeps_the_prefix(tmp_path, monkeypatch):
    monkeypatch.setenv(STATE_URL_ENV, "redis://127.0.0.1:6390")
    text = f'[state]\nurl = "redis://redis.internal:6379"\nprefix = "psa"\n{ACME}'
    state = load_config(write(tmp_path, text)).state
    assert (state.url, state.prefix) == ("redis://127.0.0.1:6390", "psa")
    assert load_config(write(tmp_path, ACME)).state.url == "redis://127.0.0.1:6390"  # no table needed


@pytest.mark.parametrize(
    "url",
    [
        f"http://:{PASSWORD}@redis.internal:6379",
        f"redis://:{PASSWORD}@",
        f"redis://:{PASSWORD}@redis.internal:99999",
        f"redis://:{PASSWORD}@redis.internal/zero",
        f"redis://:{PASSWORD}@bad_host!:6379",
        f"redis://:{PASSWORD}@redis.internal:6379 ",
    ],
)
def test_a_url_that_is_not_redis_is_refused_without_showing_it(tmp_path, monkeypatch, url):
    message = error_for(tmp_path, f'[state]\nurl = "{url}"\n{ACME}')
    assert "[state]: key 'url': must be a Redis URL such as 'redis://redis.internal:6379/0'" in message
    assert PASSWORD not in message
    monkeypatch.setenv(STATE_URL_ENV, url)
    message = error_for(tmp_path, ACME)
    assert message.endswith(
        f"${STATE_URL_ENV}: must be a Redis URL such as 'redis://redis.internal:6379/0' or "
        "'rediss://:PASSWORD@redis.internal:6380' (rediss: TLS), with a host, optionally a port and "
        "a database number"
    )
    assert PASSWORD not in message


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('[state]\nprefix = "two words"\n', "[state]: key 'prefix': must be 1-64 letters, digits"),
        ('[state]\nurls = "redis://x"\n', "[state]: key 'urls': unknown key (did you mean 'url'?)"),
        ("[state]\nurl = 6379\n", "[state]: key 'url': must be a string"),
        ('state = "redis://x"\n', "key 'state': must be a table ([state])"),
    ],
)
def test_bad_state_table(tmp_path, table, expected):
    assert expected in error_for(tmp_path, table + ACME)
