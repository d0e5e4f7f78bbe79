"""`mcp-server-connectwise tenants set-keys | list | remove`, through the real CLI entry point."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest

from mcp_server_connectwise.cli import main
from mcp_server_connectwise.connectwise import ApiCredentials
from mcp_server_connectwise.secrets import SERVICE_NAME, KeyStore

PUBLIC = "pub-1a2b3c4d"
PRIVATE = "priv-9f8e7d6c5b4a3921"

CONFIG = """
default_tenant = "acme"
[tenants.acme]
company_id = "acme"
client_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"
site = "api-na.myconnectwise.net"
[tenants.globex]
company_id = "globex"
client_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"
base_url = "http://127.0.0.1:8080/v2025_1/apis/3.0"
read_only = true
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tenants.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    assert PRIVATE not in out + err
    return exited.value.code, out, err


def pipe_stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


# --- set-keys -----------------------------------------------------------------------------------------------


def test_set_keys_from_piped_stdin(config_file, memory_keyring, monkeypatch, capsys) -> None:
    pipe_stdin(monkeypatch, f"  {PUBLIC}  \n{PRIVATE}\r\n")
    code, out, err = run(["tenants", "--config", str(config_file), "set-keys", "acme"], capsys)
    assert (code, out, err) == (0, "stored the API keys of tenant 'acme' in the OS keyring\n", "")
    assert PUBLIC not in out
    assert KeyStore().get("acme") == ApiCredentials(public_key=PUBLIC, private_key=PRIVATE)


def test_set_keys_reads_exactly_two_lines(config_file, memory_keyring, monkeypatch, capsys) -> None:
    stdin = io.StringIO(f"{PUBLIC}\n{PRIVATE}\nleft for whoever reads next\n")
    monkeypatch.setattr(sys, "stdin", stdin)
    code, _, _ = run(["--config", str(config_file), "tenants", "set-keys", "acme"], capsys)
    assert code == 0
    assert stdin.read() == "left for whoever reads next\n"


def test_set_keys_again_says_replaced(config_file, memory_keyring, monkeypatch, capsys) -> None:
    KeyStore().set("acme", ApiCredentials(public_key="old-pub", private_key="old-priv"))
    pipe_stdin(monkeypatch, f"{PUBLIC}\n{PRIVATE}\n")
    code, out, _ = run(["tenants", "--config", str(config_file), "set-keys", "acme"], capsys)
    assert (code, out) == (0, "replaced the API keys of tenant 'acme' in the OS keyring\n")
    assert KeyStore().get("acme") == ApiCredentials(public_key=PUBLIC, private_key=PRIVATE)


@pytest.mark.parametrize(
    ("stdin", "which"),
    [("", "public"), (f"{PUBLIC}\n", "private"), (f"\n{PRIVATE}\n", "public"), (f"{PUBLIC}\n   \n", "private")],
)
def test_set_keys_refuses_empty_keys(config_file, memory_keyring, monkeypatch, capsys, stdin, which) -> None:
    pipe_stdin(monkeypatch, stdin)
    code, out, err = run(["tenants", "--config", str(config_file), "set-keys", "acme"], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"mcp-server-connectwise: the {which} key is empty") and err.count("\n") == 1
    assert memory_keyring.store == {}


def test_set_keys_refuses_a_key_with_spaces_without_echoing_it(config_file, memory_keyring, monkeypatch, capsys):
    pipe_stdin(monkeypatch, f"{PUBLIC}\npriv 9f8e {PRIVATE}\n")
    code, _, err = run(["tenants", "--config", str(config_file), "set-keys", "acme"], capsys)
    assert code == 2
    assert (
        err
        == "mcp-server-connectwise: the private key contains spaces or control characters; paste it alone on its line\n"
    )
    assert memory_keyring.store == {}


def test_set_keys_prompts_without_echo_on_a_terminal(config_file, memory_keyring, monkeypatch, capsys) -> None:
    prompts: list[str] = []
    answers = iter([PUBLIC, PRIVATE])

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr("getpass.getpass", fake_getpass)
    code, out, _ = run(["tenants", "--config", str(config_file), "set-keys", "globex"], capsys)
    assert code == 0
    assert prompts == ["Public key for tenant 'globex': ", "Private key for tenant 'globex': "]
    assert out == "stored the API keys of tenant 'globex' in the OS keyring\n"
    assert KeyStore().get("globex") == ApiCredentials(public_key=PUBLIC, private_key=PRIVATE)


def test_set_keys_for_an_unknown_tenant(config_file, memory_keyring, monkeypatch, capsys) -> None:
    pipe_stdin(monkeypatch, f"{PUBLIC}\n{PRIVATE}\n")
    code, out, err = run(["tenants", "--config", str(config_file), "set-keys", "initech"], capsys)
    assert (code, out) == (2, "")
    assert err == "mcp-server-connectwise: unknown tenant 'initech'; known tenants: acme, globex\n"
    assert memory_keyring.store == {}


def test_set_keys_without_a_keyring_fails_before_reading_keys(config_file, monkeypatch, capsys) -> None:
    keyring.set_keyring(keyring.backends.fail.Keyring())
    stdin = io.StringIO(f"{PUBLIC}\n{PRIVATE}\n")
    monkeypatch.setattr(sys, "stdin", stdin)
    code, out, err = run(["tenants", "--config", str(config_file), "set-keys", "acme"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("mcp-server-connectwise: no usable keyring backend") and err.count("\n") == 1
    assert "keyrings.alt" in err
    assert stdin.tell() == 0


def test_missing_config_file(tmp_path, capsys) -> None:
    missing = tmp_path / "nope.toml"
    code, out, err = run(["tenants", "--config", str(missing), "list"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"mcp-server-connectwise: no config file at {missing}")
    assert "tenants.example.toml" in err and err.count("\n") == 1


# --- list ---------------------------------------------------------------------------------------------------


def test_list_shows_tenants_and_key_presence_never_keys(config_file, memory_keyring, capsys) -> None:
    KeyStore().set("acme", ApiCredentials(public_key=PUBLIC, private_key=PRIVATE))
    code, out, err = run(["tenants", "--config", str(config_file), "list"], capsys)
    assert (code, err) == (0, "")
    assert PUBLIC not in out
    lines = out.splitlines()
    assert lines[0] == f"Tenants in {config_file}:"
    acme, globex = lines[1].split(), lines[2].split()
    assert acme == [
        "acme",
        "(default)",
        "company=acme",
        "site=api-na.myconnectwise.net",
        "read-write",
        "keys:",
        "present",
    ]
    assert globex == [
        "globex",
        "company=globex",
        "base_url=http://127.0.0.1:8080/v2025_1/apis/3.0",
        "read-only",
        "keys:",
        "missing",
    ]
    assert lines[3] == "Store missing keys with: mcp-server-connectwise tenants set-keys NAME"


def test_list_without_a_keyring(config_file, capsys) -> None:
    keyring.set_keyring(keyring.backends.fail.Keyring())
    code, out, err = run(["tenants", "--config", str(config_file), "list"], capsys)
    assert (code, out) == (2, "")
    assert "PYTHON_KEYRING_BACKEND" in err and err.count("\n") == 1


# --- remove -------------------------------------------------------------------------------------------------


def test_remove(config_file, memory_keyring, capsys) -> None:
    KeyStore().set("acme", ApiCredentials(public_key=PUBLIC, private_key=PRIVATE))
    KeyStore().set("globex", ApiCredentials(public_key=PUBLIC, private_key=PRIVATE))
    code, out, _ = run(["tenants", "--config", str(config_file), "remove", "acme"], capsys)
    assert (code, out) == (0, "removed the API keys of tenant 'acme' from the OS keyring\n")
    assert not KeyStore().has("acme")
    assert KeyStore().has("globex")


def test_remove_a_tenant_no_longer_in_the_config(config_file, memory_keyring, capsys) -> None:
    KeyStore().set("oldclient", ApiCredentials(public_key=PUBLIC, private_key=PRIVATE))
    code, out, _ = run(["tenants", "--config", str(config_file), "remove", "oldclient"], capsys)
    assert code == 0 and "oldclient" in out
    assert (SERVICE_NAME, "oldclient/private_key") not in memory_keyring.store


def test_remove_works_even_with_a_broken_config(tmp_path, memory_keyring, capsys) -> None:
    broken = tmp_path / "tenants.toml"
    broken.write_text("[tenants.acme\n")
    KeyStore().set("acme", ApiCredentials(public_key=PUBLIC, private_key=PRIVATE))
    code, _, _ = run(["tenants", "--config", str(broken), "remove", "acme"], capsys)
    assert code == 0
    assert memory_keyring.store == {}


def test_remove_when_nothing_is_stored(config_file, memory_keyring, capsys) -> None:
    code, out, err = run(["tenants", "--config", str(config_file), "remove", "acme"], capsys)
    assert (code, out, err) == (1, "", "mcp-server-connectwise: no API keys stored for tenant 'acme'\n")


# --- a broken file from a real process ----------------------------------------------------------------------


def test_broken_config_is_one_line_and_exit_2_in_a_real_process(tmp_path: Path) -> None:
    broken = tmp_path / "tenants.toml"
    broken.write_text(
        '[tenants.acme]\ncompany_id = "acme"\nclient_id = "c"\nbase_url = "http://cw.example.com/apis/3.0"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "mcp_server_connectwise", "--config", str(broken), "tenants", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"mcp-server-connectwise: {broken}: tenant 'acme': key 'base_url': "
        "must use https (http is only allowed for loopback hosts)"
    ]
