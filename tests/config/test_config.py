"""tenants.toml: loading, every refusal as one line naming file/tenant/key, path precedence, default tenant."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError as PydanticValidationError

from mcp_server_connectwise.config import (
    AppConfig,
    ConfigError,
    HttpConfig,
    Principal,
    SecretsConfig,
    ServerConfig,
    StateConfig,
    TenantConfig,
    config_path,
    example_config,
    load_config,
)
from mcp_server_connectwise.config.models import HTTP_LIMIT_RANGES

from support.paths import EXAMPLE_CONFIG, REPO_ROOT

PLACEHOLDER = "00000000-0000-0000-0000-000000000000"

ACME = """
[tenants.acme]
company_id = "acme"
client_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"
site = "api-na.myconnectwise.net"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tenants.toml"
    path.write_text(text, encoding="utf-8")
    return path


def tenant_toml(**keys: object) -> str:
    """A one-tenant file 'acme' with `keys` on top of valid defaults (a value of None drops the key)."""
    values: dict[str, object] = {
        "company_id": "acme",
        "client_id": "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11",
        "site": "api-na.myconnectwise.net",
    }
    values.update(keys)
    lines = ["[tenants.acme]"]
    for key, value in values.items():
        if value is None:
            continue
        literal = (
            str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, int) else f'"{value}"'
        )
        lines.append(f"{key} = {literal}")
    return "\n".join(lines) + "\n"


def error_for(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert "Traceback" not in message and "pydantic" not in message and "validation error" not in message
    return message


# --- happy path ---------------------------------------------------------------------------------------------


def filled_in_example(tmp_path: Path) -> Path:
    """tenants.example.toml with its placeholder client ids replaced, as a user's first edit does."""
    return write(tmp_path, EXAMPLE_CONFIG.read_text().replace(PLACEHOLDER, "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"))


def test_the_example_file_as_shipped_asks_for_a_real_client_id() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE_CONFIG)
    assert str(caught.value) == (
        f"{EXAMPLE_CONFIG}: tenant 'acme': key 'client_id': is a placeholder (a GUID of zeros, as in "
        "tenants.example.toml): replace it with your integration's clientId from https://developer.connectwise.com/ClientID"
    )
    assert EXAMPLE_CONFIG.read_text().count(f'client_id = "{PLACEHOLDER}"') == 2  # nothing else to fill in there


def test_loads_the_example_file_from_the_repo(tmp_path: Path) -> None:
    config = load_config(filled_in_example(tmp_path))
    assert config.default_tenant == "acme"
    assert set(config.tenants) == {"acme", "globex"}
    assert config.tenants["acme"].site == "api-na.myconnectwise.net"
    assert config.tenants["globex"].base_url == "https://api-eu.myconnectwise.net/v2025_1/apis/3.0"
    assert config.tenants["globex"].read_only is True
    assert config.tenants["acme"].default_agreement_type == "Managed Services"


def test_example_file_holds_no_secret_key() -> None:
    text = EXAMPLE_CONFIG.read_text()
    assert "public_key =" not in text and "private_key =" not in text


def test_the_example_ships_in_the_package_as_its_one_copy() -> None:
    assert example_config() == EXAMPLE_CONFIG.read_text(encoding="utf-8")
    assert not (REPO_ROOT / "tenants.example.toml").exists()  # one copy only: the packaged one
    # Every path of it the README names is where it says.
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    named = re.findall(r"`([\w./-]*tenants\.example\.toml)`", readme)
    assert "src/mcp_server_connectwise/config/tenants.example.toml" in named
    for path in named:
        assert path == "tenants.example.toml" or (REPO_ROOT / path).is_file(), path


def test_the_example_documents_every_table_and_key() -> None:
    text = EXAMPLE_CONFIG.read_text()
    for table, model in (
        ("secrets", SecretsConfig),
        ("server", ServerConfig),
        ("http", HttpConfig),
        ("state", StateConfig),
    ):
        assert f"[{table}]" in text
        for key in set(model.model_fields) - {"principals"}:
            assert f"{key} = " in text, (table, key)


def test_loads_every_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
default_tenant = "acme"
[audit]
path = "logs/audit.jsonl"
[tenants.acme]
company_id = "acme"
client_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"
base_url = "http://127.0.0.1:8080/v2025_1/apis/3.0/"
member = "api-bot"
read_only = true
api_version = "2024.2"
requests_per_minute = 120
[tenants.beta]
company_id = "beta_co"
client_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"
site = "api-eu.myconnectwise.net:8443"
""",
    )
    config = load_config(path)
    assert config.path == path
    assert config.audit.path == tmp_path / "logs" / "audit.jsonl"  # relative to the config file
    assert config.tenants["acme"] == TenantConfig(
        name="acme",
        company_id="acme",
        client_id="0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11",
        base_url="http://127.0.0.1:8080/v2025_1/apis/3.0",  # trailing slash dropped
        member="api-bot",
        read_only=True,
        api_version="2024.2",
        requests_per_minute=120,
    )
    beta = config.tenants["beta"]
    assert (beta.site, beta.base_url, beta.read_only, beta.api_version, beta.requests_per_minute) == (
        "api-eu.myconnectwise.net:8443",
        None,
        False,
        "2025.1",
        600,
    )


def test_default_audit_path_is_in_the_user_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if sys.platform != "linux":
        pytest.skip("XDG variables steer platformdirs on Linux only")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    config = load_config(write(tmp_path, ACME))
    assert config.audit.path == tmp_path / "data" / "mcp-server-connectwise" / "audit.jsonl"


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/v2025_1/apis/3.0",
        "http://[::1]:8080/apis/3.0",
        "http://127.0.0.2:8080/apis/3.0",
        "http://LOCALHOST/apis/3.0",
    ],
)
def test_http_is_accepted_for_loopback_hosts(tmp_path: Path, url: str) -> None:
    config = load_config(write(tmp_path, tenant_toml(site=None, base_url=url)))
    assert config.tenants["acme"].base_url == url


@pytest.mark.parametrize(
    "host", ["127.0.0.2", "127.1.2.3", "localhost", "[::1]", "10.0.0.1", "0.0.0.0", "cw.example.com"]
)
def test_config_client_and_http_transports_agree_on_loopback(host: str) -> None:
    """A host the client speaks plain http to (its site) is one the config lets a base_url use http for, and
    one the HTTP transports treat as this machine."""
    from mcp_server_connectwise.connectwise.hosts import is_loopback_host
    from mcp_server_connectwise.http_auth import transport_security

    try:
        TenantConfig(
            name="acme",
            company_id="acme",
            client_id="0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11",
            base_url=f"http://{host}:8080/apis/3.0",
        )
        config_allows_http = True
    except ValueError:
        config_allows_http = False
    try:
        transport_security(host, HttpConfig())
        transports_see_loopback = True
    except ConfigError:  # a non-loopback bind without allowed names
        transports_see_loopback = False
    assert config_allows_http == transports_see_loopback == is_loopback_host(host)


def test_tenant_config_is_frozen() -> None:
    tenant = TenantConfig(
        name="a", company_id="a", client_id="0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11", site="api-na.myconnectwise.net"
    )
    with pytest.raises(PydanticValidationError, match="frozen"):
        tenant.read_only = True  # type: ignore[misc]


# --- default tenant -----------------------------------------------------------------------------------------


def test_single_tenant_is_the_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ACME))
    assert config.default_tenant == "acme"
    assert config.tenant(None).name == "acme"
    assert config.tenant("acme").name == "acme"


def test_explicit_default_tenant(tmp_path: Path) -> None:
    text = 'default_tenant = "beta"\n' + ACME + ACME.replace("acme", "beta")
    config = load_config(write(tmp_path, text))
    assert config.tenant(None).name == "beta"


def test_several_tenants_and_no_default_needs_a_name(tmp_path: Path) -> None:
    path = write(tmp_path, ACME + ACME.replace("acme", "beta"))
    config = load_config(path)
    assert config.default_tenant is None
    with pytest.raises(ConfigError) as caught:
        config.tenant(None)
    assert str(caught.value) == f"no tenant named and no default_tenant set in {path}; known tenants: acme, beta"


def test_unknown_tenant_names_the_known_ones(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ACME + ACME.replace("acme", "beta")))
    with pytest.raises(ConfigError) as caught:
        config.tenant("x")
    assert str(caught.value) == "unknown tenant 'x'; known tenants: acme, beta"


def test_config_built_in_code() -> None:
    demo = TenantConfig(
        name="demo",
        company_id="demo",
        client_id="0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11",
        base_url="http://127.0.0.1:9000/apis/3.0",
    )
    config = AppConfig(tenants={"demo": demo})
    assert config.path is None
    assert config.tenant(None) is demo


# --- config_path precedence ---------------------------------------------------------------------------------


def test_explicit_path_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTWISE_MCP_CONFIG", str(tmp_path / "env.toml"))
    assert config_path(tmp_path / "cli.toml") == tmp_path / "cli.toml"


def test_env_wins_over_platform_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTWISE_MCP_CONFIG", str(tmp_path / "env.toml"))
    assert config_path(None) == tmp_path / "env.toml"


def test_relative_and_home_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_path("t.toml") == tmp_path / "t.toml"
    assert config_path("~/t.toml") == tmp_path / "home" / "t.toml"


def test_platform_dir_is_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if sys.platform != "linux":
        pytest.skip("XDG variables steer platformdirs on Linux only")
    monkeypatch.delenv("CONNECTWISE_MCP_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_path(None) == tmp_path / "xdg" / "mcp-server-connectwise" / "tenants.toml"
    monkeypatch.setenv("CONNECTWISE_MCP_CONFIG", "")  # empty means unset
    assert config_path(None) == tmp_path / "xdg" / "mcp-server-connectwise" / "tenants.toml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_path(None) == tmp_path / "home" / ".config" / "mcp-server-connectwise" / "tenants.toml"


def test_load_config_follows_the_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTWISE_MCP_CONFIG", str(write(tmp_path, ACME)))
    assert load_config().path == tmp_path / "tenants.toml"


# --- refusals: one line naming the file, the tenant and the key ---------------------------------------------


def test_missing_file_says_where_it_looked_and_points_at_the_example(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"no config file at {path} (given with --config): create it with "
        f"`mcp-server-connectwise --config {path} tenants init` (a copy of tenants.example.toml) and edit it"
    )


def test_missing_file_at_the_default_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONNECTWISE_MCP_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        load_config()
    message = str(caught.value)
    assert str(config_path(None)) in message
    assert "default location" in message and "CONNECTWISE_MCP_CONFIG" in message and "tenants.example.toml" in message
    assert "`mcp-server-connectwise tenants init`" in message


def test_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    message = error_for(tmp_path, '[tenants.acme]\ncompany_id = "acme"\nclient_id = \n')
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 3" in message


def test_unknown_tenant_key_is_named_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, tenant_toml(raed_only=True)) == (
        f"{path}: tenant 'acme': key 'raed_only': unknown key (did you mean 'read_only'?)"
    )


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, "verbose = true\n" + ACME) == f"{path}: key 'verbose': unknown key"


def test_unknown_audit_key(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    text = '[audit]\nfile = "a.jsonl"\n' + ACME
    assert error_for(tmp_path, text) == f"{path}: [audit]: key 'file': unknown key"


def test_name_inside_the_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, tenant_toml(name="other")) == f"{path}: tenant 'acme': key 'name': unknown key"


@pytest.mark.parametrize("key", ["company_id", "client_id"])
def test_missing_required_key(tmp_path: Path, key: str) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, tenant_toml(**{key: None})) == (
        f"{path}: tenant 'acme': key '{key}': required key is missing"
    )


def test_both_site_and_base_url(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    text = tenant_toml(base_url="https://api-na.myconnectwise.net/v2025_1/apis/3.0")
    assert error_for(tmp_path, text) == f"{path}: tenant 'acme': set exactly one of 'site' or 'base_url' (found both)"


def test_neither_site_nor_base_url(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, tenant_toml(site=None)) == (
        f"{path}: tenant 'acme': set exactly one of 'site' or 'base_url' (found neither)"
    )


def test_http_base_url_on_a_remote_host(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    text = tenant_toml(site=None, base_url="http://api-na.myconnectwise.net/v2025_1/apis/3.0")
    assert error_for(tmp_path, text) == (
        f"{path}: tenant 'acme': key 'base_url': must use https (http is only allowed for loopback hosts)"
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("api-na.myconnectwise.net/v2025_1/apis/3.0", "must be a full URL"),
        ("ftp://api-na.myconnectwise.net/apis/3.0", "must be a full URL"),
        ("https://", "must be a full URL"),
        ("https://user:pw@api-na.myconnectwise.net/apis/3.0", "must not contain credentials"),
        ("https://api-na.myconnectwise.net/apis/3.0?x=1", "must not have a query"),
        ("https://api-na.myconnectwise.net:99999/apis/3.0", "port must be a number"),
        ("https://api_na!.example.com/apis/3.0", "is not a valid host name"),
        ("https://api-na.myconnectwise.net/apis/3.0\\n", "without spaces or control characters"),
        ("https://api-na.my\\tconnectwise.net/apis/3.0", "without spaces or control characters"),
    ],
)
def test_bad_base_url(tmp_path: Path, url: str, problem: str) -> None:
    path = tmp_path / "tenants.toml"
    message = error_for(tmp_path, tenant_toml(site=None, base_url=url))
    assert message.startswith(f"{path}: tenant 'acme': key 'base_url': ")
    assert problem in message
    assert "pw" not in message


@pytest.mark.parametrize(
    "site",
    [
        "https://api-na.myconnectwise.net",
        "api-na.myconnectwise.net/v2025_1",
        "bad host",
        "h:port",
        "api-na.myconnectwise.net\\n",
        "api-na.myconnect\\twise.net",
    ],
)
def test_bad_site(tmp_path: Path, site: str) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, tenant_toml(site=site)).startswith(f"{path}: tenant 'acme': key 'site': ")


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("read_only", "false", "must be true or false"),
        ("requests_per_minute", 0, "must be between 1 and 5000"),
        ("requests_per_minute", 100000, "must be between 1 and 5000"),
        ("requests_per_minute", "600", "must be a whole number"),
        ("api_version", "latest", "must look like '2025.1' (year.release)"),
        ("company_id", "acme+corp", "must be the ConnectWise login company: letters, digits, '_', '.' or '-'"),
        ("client_id", "", "must be a non-empty value without spaces or control characters"),
        ("member", "api bot", "must be a non-empty value without spaces or control characters"),
        ("company_id", 7, "must be a string"),
        (
            "default_agreement_type",
            " ",
            "must be an agreement type name as ConnectWise shows it (1 to 50 characters)",
        ),
        (
            "default_agreement_type",
            "x" * 51,
            "must be an agreement type name as ConnectWise shows it (1 to 50 characters)",
        ),
    ],
)
def test_bad_values(tmp_path: Path, key: str, value: object, problem: str) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, tenant_toml(**{key: value})) == f"{path}: tenant 'acme': key '{key}': {problem}"


def test_header_injection_in_client_id_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, tenant_toml(client_id="abc\\r\\nX-Evil: 1"))
    assert "key 'client_id'" in message and "\r" not in message


@pytest.mark.parametrize("key", ["public_key", "private_key"])
def test_api_keys_in_the_file_are_refused(tmp_path: Path, key: str) -> None:
    path = tmp_path / "tenants.toml"
    message = error_for(tmp_path, tenant_toml(**{key: "s3cr3t-value"}))
    assert message == (
        f"{path}: tenant 'acme': key '{key}': API keys are never read from the config: "
        "store them in the OS keyring with `mcp-server-connectwise tenants set-keys acme`"
    )
    assert "s3cr3t-value" not in message


def test_api_key_at_the_top_level_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, 'private_key = "s3cr3t-value"\n' + ACME)
    assert "keyring" in message and "s3cr3t-value" not in message


def test_default_tenant_must_name_a_tenant(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, 'default_tenant = "nobody"\n' + ACME) == (
        f"{path}: default_tenant 'nobody' is not a configured tenant; known tenants: acme"
    )


@pytest.mark.parametrize("text", ["", 'default_tenant = "acme"\n', "[tenants]\n"])
def test_no_tenants(tmp_path: Path, text: str) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, text) == (
        f"{path}: no tenants configured: add a [tenants.NAME] table (see tenants.example.toml)"
    )


def test_bad_tenant_name(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    message = error_for(tmp_path, ACME.replace("[tenants.acme]", '[tenants."a/b"]'))
    assert message.startswith(f"{path}: tenant 'a/b': a tenant name must be")


def test_tenant_that_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, '[tenants]\nacme = "x"\n') == f"{path}: tenant 'acme': must be a table ([tenants.acme])"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    path.write_bytes(b'[tenants.acme]\ncompany_id = "\xff"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: invalid TOML")


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: cannot read the file: ")


# --- [http]: principals, allowed hosts/origins, body cap; per-tenant tool allowlists --------------------------

GLOBEX = ACME.replace("acme", "globex")
SHA_A = "ab" * 32
SHA_B = "cd" * 32


def principal_toml(name: str = "alice", **keys: object) -> str:
    """A [http.principals.NAME] table with valid defaults; a value of None drops the key."""
    values: dict[str, object] = {"token_sha256": f'"{SHA_A}"', "tenants": '["acme"]'}
    values.update(keys)
    lines = [f"[http.principals.{name}]"] + [f"{key} = {value}" for key, value in values.items() if value is not None]
    return "\n".join(lines) + "\n"


def test_loads_the_http_table_and_tool_allowlists(tmp_path: Path) -> None:
    text = (
        '[http]\nallowed_hosts = ["MCP.example.com", "mcp.example.com:*", "[::1]:8000", "mcp.example.com"]\n'
        'allowed_origins = ["https://mcp.example.com", "http://localhost:*"]\nmax_request_body_bytes = 65536\n'
        + principal_toml(token_sha256=f'"{SHA_A.upper()}"', tenants='["acme", "globex", "acme"]')
        + principal_toml("bob.smith", token_sha256=f'"{SHA_B}"').replace("bob.smith]", '"bob.smith"]')
        + ACME
        + 'tools = ["search_tickets", "get_ticket_details", "search_tickets"]\n'
        + GLOBEX
    )
    config = load_config(write(tmp_path, text))
    http = config.http
    assert http.allowed_hosts == ("mcp.example.com", "mcp.example.com:*", "[::1]:8000")  # lowercased, once each
    assert http.allowed_origins == ("https://mcp.example.com", "http://localhost:*")
    assert http.max_request_body_bytes == 65536
    assert http.principals == {
        "alice": Principal(name="alice", token_sha256=SHA_A, tenants=("acme", "globex")),  # hash lowercased
        "bob.smith": Principal(name="bob.smith", token_sha256=SHA_B, tenants=("acme",)),
    }
    assert config.tenants["acme"].tools == ("search_tickets", "get_ticket_details")
    assert config.tenants["globex"].tools is None


def test_http_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ACME))
    assert config.http == HttpConfig()
    assert (config.http.principals, config.http.allowed_hosts, config.http.allowed_origins) == ({}, (), ())
    assert config.http.max_request_body_bytes == 1024 * 1024
    assert config.tenants["acme"].tools is None
    assert AppConfig(tenants=config.tenants).http == HttpConfig()


def test_loads_the_http_limits(tmp_path: Path) -> None:
    text = (
        "[http]\nheader_timeout_seconds = 2.5\nbody_timeout_seconds = 20\nmax_connections = 50\n"
        "max_sessions_per_principal = 3\nsession_idle_timeout_seconds = 120\nlog_repeat_burst = 10\n"
        "log_repeat_interval_seconds = 30\n" + ACME
    )
    http = load_config(write(tmp_path, text)).http
    assert (http.header_timeout_seconds, http.body_timeout_seconds, http.max_connections) == (2.5, 20.0, 50)
    assert (http.max_sessions_per_principal, http.session_idle_timeout_seconds) == (3, 120.0)
    assert (http.log_repeat_burst, http.log_repeat_interval_seconds) == (10, 30.0)


def test_http_limits_default_to_cutting_off_slow_clients_and_idle_sessions(tmp_path: Path) -> None:
    http = load_config(write(tmp_path, ACME)).http
    assert (http.header_timeout_seconds, http.body_timeout_seconds) == (10.0, 30.0)
    assert (http.max_connections, http.max_sessions_per_principal) == (200, 10)
    assert http.session_idle_timeout_seconds == 600.0  # well under the SDK's 30 minutes
    assert (http.log_repeat_burst, http.log_repeat_interval_seconds) == (5, 60.0)


def test_the_example_file_documents_every_http_key_and_each_limits_default(tmp_path: Path) -> None:
    text = EXAMPLE_CONFIG.read_text()
    table = text[text.index("# [http]\n") : text.index("# [http.principals.")]
    keys = [line.removeprefix("# ") for line in table.splitlines() if re.fullmatch(r"# [a-z][a-z0-9_]* = .+", line)]
    http = load_config(write(tmp_path, "[http]\n" + "\n".join(keys) + "\n" + ACME)).http
    assert {key.split(" = ")[0] for key in keys} == set(HttpConfig.model_fields) - {"principals"}
    for name in [*HTTP_LIMIT_RANGES, "max_request_body_bytes"]:
        assert getattr(http, name) == getattr(HttpConfig(), name), name


def test_principal_repr_hides_the_hash() -> None:
    principal = Principal(name="alice", token_sha256=SHA_A, tenants=("acme",))
    assert SHA_A not in repr(principal) and SHA_A not in str(principal)
    assert SHA_A not in repr(HttpConfig(principals={"alice": principal}))


def test_principal_tenants_must_be_configured(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    message = error_for(tmp_path, principal_toml(tenants='["acme", "initech"]') + ACME + GLOBEX)
    assert message == (
        f"{path}: principal 'alice': key 'tenants': 'initech' is not a configured tenant; known tenants: acme, globex"
    )


def test_principal_tenants_checked_for_a_config_built_in_code() -> None:
    acme = TenantConfig(
        name="acme",
        company_id="acme",
        client_id="0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11",
        site="api-na.myconnectwise.net",
    )
    alice = Principal(name="alice", token_sha256=SHA_A, tenants=("globex",))
    with pytest.raises(ValueError, match="'globex' is not a configured tenant"):
        AppConfig(tenants={"acme": acme}, http=HttpConfig(principals={"alice": alice}))


def test_two_principals_with_one_token_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    text = principal_toml("alice") + principal_toml("bob", token_sha256=f'"{SHA_A.upper()}"') + ACME
    assert error_for(tmp_path, text) == (
        f"{path}: [http]: principals 'alice' and 'bob' have the same token_sha256: give each its own token with "
        "`mcp-server-connectwise tokens create NAME --tenants a,b`"
    )


def test_the_token_itself_in_the_config_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    message = error_for(tmp_path, principal_toml(token='"cwmcp_s3cr3t"') + ACME)
    assert message == (
        f"{path}: principal 'alice': key 'token': the token itself never goes in the config, only its SHA-256 as "
        "token_sha256; create one with `mcp-server-connectwise tokens create NAME --tenants a,b`"
    )


@pytest.mark.parametrize("value", ['"cwmcp_s3cr3t"', f'"{SHA_A[:-1]}"', f'"{SHA_A[:-1]}g"', f'"{SHA_A}0"'])
def test_token_sha256_must_be_64_hex_characters(tmp_path: Path, value: str) -> None:
    path = tmp_path / "tenants.toml"
    message = error_for(tmp_path, principal_toml(token_sha256=value) + ACME)
    assert message == (
        f"{path}: principal 'alice': key 'token_sha256': must be the token's SHA-256 as 64 hexadecimal characters, "
        "never the token itself; create a token with `mcp-server-connectwise tokens create NAME --tenants a,b`"
    )
    assert value.strip('"') not in message


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({"token_sha256": None}, "key 'token_sha256': required key is missing"),
        ({"tenants": None}, "key 'tenants': required key is missing"),
        (
            {"tenants": "[]"},
            "key 'tenants': must name at least one tenant: a principal without tenants could do nothing",
        ),
        ({"tenants": '"acme"'}, """key 'tenants': must be a list of tenant names, such as ["acme", "globex"]"""),
        ({"tenants": "[1]"}, """key 'tenants': must be a list of tenant names, such as ["acme", "globex"]"""),
        ({"token_sha256": "7"}, "key 'token_sha256': must be a string"),
        ({"tenant": '["acme"]'}, "key 'tenant': unknown key (did you mean 'tenants'?)"),
    ],
)
def test_bad_principal_keys(tmp_path: Path, keys: dict[str, object], problem: str) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, principal_toml(**keys) + ACME) == f"{path}: principal 'alice': {problem}"


def test_bad_principal_name(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    message = error_for(tmp_path, principal_toml('"a b"') + ACME)
    assert message == (
        f"{path}: principal 'a b': a principal name must be 1-64 letters, digits, '_', '.' or '-', "
        "starting with a letter or digit"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("http = 1\n", "key 'http': must be a table ([http])"),
        ("[http]\nprincipals = 3\n", "[http]: key 'principals': must be a table of [http.principals.NAME] tables"),
        ('[http.principals]\nalice = "x"\n', "principal 'alice': must be a table ([http.principals.alice])"),
        ("[http]\nallowed_host = []\n", "[http]: key 'allowed_host': unknown key (did you mean 'allowed_hosts'?)"),
        ('[http]\nallowed_hosts = "mcp.example.com"\n', "[http]: key 'allowed_hosts': must be a list of strings"),
        ("[http]\nallowed_origins = [1]\n", "[http]: key 'allowed_origins': must be a list of strings"),
        (
            "[http]\nmax_request_body_bytes = 100\n",
            "[http]: key 'max_request_body_bytes': must be between 1024 and 16777216",
        ),
        ("[http]\nmax_request_body_bytes = 1e9\n", "[http]: key 'max_request_body_bytes': must be a whole number"),
        ("[http]\nmax_request_body_bytes = true\n", "[http]: key 'max_request_body_bytes': must be a whole number"),
        (
            "[http]\nheader_timeout_seconds = 0\n",
            "[http]: key 'header_timeout_seconds': must be between 1 and 300 seconds",
        ),
        (
            "[http]\nbody_timeout_seconds = nan\n",
            "[http]: key 'body_timeout_seconds': must be between 1 and 3600 seconds",
        ),
        (
            "[http]\nbody_timeout_seconds = inf\n",
            "[http]: key 'body_timeout_seconds': must be between 1 and 3600 seconds",
        ),
        ('[http]\nheader_timeout_seconds = "5"\n', "[http]: key 'header_timeout_seconds': must be a number"),
        ("[http]\nheader_timeout_seconds = true\n", "[http]: key 'header_timeout_seconds': must be a number"),
        ("[http]\nmax_connections = 0\n", "[http]: key 'max_connections': must be between 1 and 100000"),
        ("[http]\nmax_connections = 1.5\n", "[http]: key 'max_connections': must be a whole number"),
        (
            "[http]\nmax_sessions_per_principal = 100000\n",
            "[http]: key 'max_sessions_per_principal': must be between 1 and 10000",
        ),
        (
            "[http]\nsession_idle_timeout_seconds = 0.5\n",
            "[http]: key 'session_idle_timeout_seconds': must be between 1 and 86400 seconds",
        ),
        ("[http]\nlog_repeat_burst = -1\n", "[http]: key 'log_repeat_burst': must be between 1 and 10000"),
        (
            "[http]\nlog_repeat_interval_seconds = []\n",
            "[http]: key 'log_repeat_interval_seconds': must be a number",
        ),
        (
            "[http]\nheader_timeout = 5\n",
            "[http]: key 'header_timeout': unknown key (did you mean 'header_timeout_seconds'?)",
        ),
    ],
)
def test_bad_http_table(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, text + ACME) == f"{path}: {problem}"


@pytest.mark.parametrize(
    "host",
    ["*", "*.example.com", "https://mcp.example.com", "mcp.example.com/mcp", "h:port", "a@b", "mcp.example.com\n"],
)
def test_bad_allowed_host(tmp_path: Path, host: str) -> None:
    path = tmp_path / "tenants.toml"
    escaped = host.replace("\n", "\\n")
    assert error_for(tmp_path, f'[http]\nallowed_hosts = ["{escaped}"]\n' + ACME) == (
        f"{path}: [http]: key 'allowed_hosts': {host!r} is not a Host value: give a host name or IP address "
        "([::1] for IPv6), optionally with ':PORT' or ':*' for any port; no scheme, path or other wildcard"
    )


@pytest.mark.parametrize(
    "origin",
    [
        "*",
        "mcp.example.com",
        "https://mcp.example.com/",
        "https://mcp.example.com/mcp",
        "https://*.example.com",
        "ftp://mcp.example.com",
        "null",
        "https://mcp.example.com\n",
        "https://mcp.exa\tmple.com",
    ],
)
def test_bad_allowed_origin(tmp_path: Path, origin: str) -> None:
    path = tmp_path / "tenants.toml"
    escaped = origin.replace("\n", "\\n").replace("\t", "\\t")
    assert error_for(tmp_path, f'[http]\nallowed_origins = ["{escaped}"]\n' + ACME) == (
        f"{path}: [http]: key 'allowed_origins': {origin!r} is not an Origin: give 'https://HOST' or "
        "'https://HOST:PORT' (':*' for any port), with no path or trailing slash"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[]", "must name at least one tool (remove the key to allow every tool)"),
        ('"search_tickets"', 'must be a list of tool names, such as ["search_tickets", "get_ticket_details"]'),
        ("[1]", 'must be a list of tool names, such as ["search_tickets", "get_ticket_details"]'),
        ('["search tickets"]', "'search tickets' is not a tool name (letters, digits, '_', '.' or '-')"),
        ('["tickets/search"]', "'tickets/search' is not a tool name (letters, digits, '_', '.' or '-')"),
    ],
)
def test_bad_tool_allowlist(tmp_path: Path, value: str, problem: str) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, ACME + f"tools = {value}\n") == f"{path}: tenant 'acme': key 'tools': {problem}"


def test_audit_rotation_size(tmp_path: Path) -> None:
    path = write(tmp_path, "[audit]\nmax_bytes = 1048576\n" + ACME)
    assert load_config(path).audit.max_bytes == 1048576
    assert load_config(write(tmp_path, ACME)).audit.max_bytes == 10 * 1024 * 1024


@pytest.mark.parametrize("value", ["1000", "true", '"10MB"', "2147483648"])
def test_audit_rotation_size_refused(tmp_path: Path, value: str) -> None:
    text = f"[audit]\nmax_bytes = {value}\n" + ACME
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, text) == (
        f"{path}: [audit]: key 'max_bytes': must be a whole number of bytes from 65536 to 1073741824"
    )


# --- [server]: the toolsets this server offers ---------------------------------------------------------------


def test_loads_the_server_toolsets(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[server]\ntoolsets = ["tickets", "time", "tickets"]\n' + ACME))
    assert config.server == ServerConfig(toolsets=("tickets", "time"))  # once each, in the order given


def test_every_toolset_without_a_server_table(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ACME)).server.toolsets is None
    assert load_config(write(tmp_path, "[server]\n" + ACME)).server.toolsets is None
    assert AppConfig(tenants=load_config(write(tmp_path, ACME)).tenants).server == ServerConfig()


def test_the_example_file_serves_every_toolset(tmp_path: Path) -> None:
    assert load_config(filled_in_example(tmp_path)).server == ServerConfig()


# --- [secrets] and client_id --------------------------------------------------------------------------------


def test_plaintext_keyrings_are_refused_unless_the_secrets_table_allows_them(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ACME)).secrets == SecretsConfig(allow_plaintext_keyring=False)
    allowed = load_config(write(tmp_path, "[secrets]\nallow_plaintext_keyring = true\n" + ACME))
    assert allowed.secrets.allow_plaintext_keyring is True
    assert load_config(filled_in_example(tmp_path)).secrets.allow_plaintext_keyring is False


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[secrets]\nallow_plaintext_keyring = "yes"\n',
            "[secrets]: key 'allow_plaintext_keyring': must be true or false",
        ),
        (
            "[secrets]\nallow_plaintext = true\n",
            "[secrets]: key 'allow_plaintext': unknown key (did you mean 'allow_plaintext_keyring'?)",
        ),
        ("secrets = true\n", "key 'secrets': must be a table ([secrets])"),
        (
            '[secrets]\nprivate_key = "k"\n',
            "[secrets]: key 'private_key': API keys are never read from the config: store them in the OS keyring "
            "with `mcp-server-connectwise tenants set-keys NAME`",
        ),
    ],
)
def test_bad_secrets_tables(tmp_path: Path, text: str, problem: str) -> None:
    assert error_for(tmp_path, text + ACME) == f"{tmp_path / 'tenants.toml'}: {problem}"


GUID_PROBLEM = (
    "must be your integration's clientId: a GUID, 32 hexadecimal digits grouped 8-4-4-4-12 "
    "(get one at https://developer.connectwise.com/ClientID)"
)
PLACEHOLDER_PROBLEM = (
    "is a placeholder (a GUID of zeros, as in tenants.example.toml): replace it with your integration's clientId "
    "from https://developer.connectwise.com/ClientID"
)


@pytest.mark.parametrize(
    ("client_id", "problem"),
    [
        ("x", GUID_PROBLEM),
        ("my-integration", GUID_PROBLEM),
        ("0f6b5a2e1c1d4e8f9a446d2f0c3b7e11", GUID_PROBLEM),
        ("{0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11}", GUID_PROBLEM),
        ("0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e1", GUID_PROBLEM),
        ("0g6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11", GUID_PROBLEM),
        (PLACEHOLDER, PLACEHOLDER_PROBLEM),
        ("00000000-0000-4000-8000-000000000000", PLACEHOLDER_PROBLEM),
    ],
)
def test_a_client_id_must_be_a_real_guid(tmp_path: Path, client_id: str, problem: str) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, tenant_toml(client_id=client_id)) == f"{path}: tenant 'acme': key 'client_id': {problem}"


@pytest.mark.parametrize("client_id", ["0F6B5A2E-1C1D-4E8F-9A44-6D2F0C3B7E11", "00000000-0000-4000-8000-000000000001"])
def test_any_other_guid_is_a_client_id(tmp_path: Path, client_id: str) -> None:
    assert load_config(write(tmp_path, tenant_toml(client_id=client_id))).tenants["acme"].client_id == client_id


def test_the_demo_and_sandbox_tenant_has_a_real_looking_client_id() -> None:
    from mcp_server_connectwise.sandbox.tenant import CLIENT_ID, sandbox_tenant

    assert sandbox_tenant("demo").config.client_id == CLIENT_ID
    with pytest.raises(PydanticValidationError, match="placeholder"):
        TenantConfig(name="a", company_id="a", client_id=PLACEHOLDER, site="api-na.myconnectwise.net")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("server = 1\n", "key 'server': must be a table ([server])"),
        ('server = "tickets"\n', "key 'server': must be a table ([server])"),
        ('[server]\ntoolset = ["tickets"]\n', "[server]: key 'toolset': unknown key (did you mean 'toolsets'?)"),
        ("[server]\nread_only = true\n", "[server]: key 'read_only': unknown key"),
        (
            '[server]\ntoolsets = "tickets"\n',
            '[server]: key \'toolsets\': must be a list of toolset names, such as ["tickets", "time"]',
        ),
        (
            "[server]\ntoolsets = [1]\n",
            '[server]: key \'toolsets\': must be a list of toolset names, such as ["tickets", "time"]',
        ),
        (
            '[server]\ntoolsets = ["tickets", true]\n',
            '[server]: key \'toolsets\': must be a list of toolset names, such as ["tickets", "time"]',
        ),
        (
            "[server]\ntoolsets = []\n",
            "[server]: key 'toolsets': must name at least one toolset (remove the key to serve every toolset)",
        ),
    ],
)
def test_bad_server_table(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "tenants.toml"
    assert error_for(tmp_path, text + ACME) == f"{path}: {problem}"


ALERTS_TABLE = """
[tenants.acme.alerts]
board = "Alerts"
status = "New"
close_status = "Auto-Closed"
priority = { critical = "Priority 1 - Emergency Response" }
"""


def test_an_alerts_table_is_read_with_its_defaults(tmp_path: Path) -> None:
    alerts = load_config(write(tmp_path, ACME + ALERTS_TABLE)).tenant("acme").alerts
    assert alerts is not None
    assert (alerts.board, alerts.close_status, alerts.priority) == (
        "Alerts",
        "Auto-Closed",
        {"critical": "Priority 1 - Emergency Response"},
    )
    assert (alerts.min_severity, alerts.coalesce_minutes, alerts.reopen_hours, alerts.flap_limit) == ("info", 15, 24, 3)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('min_severity = "urgent"\n', "min_severity"),
        ("coalesce_minutes = 0\n", "coalesce_minutes"),
        ('colour = "red"\n', "colour"),
        ('priority = { severe = "P1" }\n', "priority"),
    ],
)
def test_a_bad_alerts_key_is_named(tmp_path: Path, extra: str, key: str) -> None:
    text = ACME + ALERTS_TABLE.replace('priority = { critical = "Priority 1 - Emergency Response" }\n', "") + extra
    message = error_for(tmp_path, text)
    assert "alerts" in message and key in message


def test_a_principal_may_name_its_connectwise_member_and_metrics_take_their_own_token_hash(tmp_path: Path) -> None:
    text = f'[http]\nmetrics_token_sha256 = "{SHA_B.upper()}"\n' + principal_toml(member='"jsmith"') + ACME
    http = load_config(write(tmp_path, text)).http
    assert http.principals["alice"].member == "jsmith"
    assert http.metrics_token_sha256 == SHA_B  # lowercased, like a principal's
    assert SHA_B not in repr(http)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            principal_toml(member='"j smith"'),
            "principal 'alice': key 'member': must be a ConnectWise member identifier: 1 to 15 characters, "
            "without spaces or any of / \\ ? # %",
        ),
        (
            principal_toml(member='"../../tokens"'),
            "principal 'alice': key 'member': must be a ConnectWise member identifier: 1 to 15 characters, "
            "without spaces or any of / \\ ? # %",
        ),
        (
            '[http]\nmetrics_token_sha256 = "cwmcp_pasted-the-token-itself"\n',
            "[http]: key 'metrics_token_sha256': must be the metrics token's SHA-256 as 64 hexadecimal characters, "
            "never the token itself; create one with `mcp-server-connectwise tokens metrics`",
        ),
        (
            f'[http]\nmetrics_token_sha256 = "{SHA_A}"\n' + principal_toml(),
            "[http]: metrics_token_sha256 is the token_sha256 of principal 'alice': give /metrics its own token with "
            "`mcp-server-connectwise tokens metrics`",
        ),
    ],
)
def test_bad_members_and_metrics_tokens_are_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    assert error_for(tmp_path, text + ACME) == f"{tmp_path / 'tenants.toml'}: {message}"
    assert "pasted-the-token" not in error_for(tmp_path, text + ACME)
