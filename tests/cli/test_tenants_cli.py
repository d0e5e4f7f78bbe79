"""`mcp-server-connectwise tenants init | set-keys | list | remove`, through the real CLI entry point."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import keyring
import keyring.backends.fail
import keyrings.alt.file
import pytest

from mcp_server_connectwise.cli import main
from mcp_server_connectwise.config import example_config
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
    assert "keyrings.cryptfile" in err and "keyrings.alt" not in err  # the advice is an encrypted keyring
    assert stdin.tell() == 0


def test_missing_config_file(tmp_path, capsys) -> None:
    missing = tmp_path / "nope.toml"
    code, out, err = run(["tenants", "--config", str(missing), "list"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"mcp-server-connectwise: no config file at {missing}")
    assert "tenants.example.toml" in err and err.count("\n") == 1
    assert f"`mcp-server-connectwise --config {missing} tenants init`" in err


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


def test_list_without_a_keyring_still_lists_the_tenants(config_file, capsys) -> None:
    keyring.set_keyring(keyring.backends.fail.Keyring())
    code, out, err = run(["tenants", "--config", str(config_file), "list"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"Tenants in {config_file}:" and len(lines) == 3
    assert [line.split()[-2:] for line in lines[1:]] == [["keys:", "unknown"], ["keys:", "unknown"]]
    assert err.startswith("mcp-server-connectwise: keys unknown: no usable keyring backend")
    assert "PYTHON_KEYRING_BACKEND" in err and err.count("\n") == 1


# --- plaintext keyrings -------------------------------------------------------------------------------------


@pytest.fixture
def plaintext_keyring(tmp_path: Path) -> keyrings.alt.file.PlaintextKeyring:
    """What following "pip install keyrings.alt" gives: a base64 file, here in tmp_path."""
    backend = keyrings.alt.file.PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring_pass.cfg")
    keyring.set_keyring(backend)
    return backend


def test_set_keys_refuses_a_plaintext_keyring_before_reading_keys(config_file, plaintext_keyring, monkeypatch, capsys):
    stdin = io.StringIO(f"{PUBLIC}\n{PRIVATE}\n")
    monkeypatch.setattr(sys, "stdin", stdin)
    code, out, err = run(["tenants", "--config", str(config_file), "set-keys", "acme"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(
        "mcp-server-connectwise: the keyring backend keyrings.alt.file.PlaintextKeyring keeps API keys unencrypted "
        "on disk, so it is refused: use the OS keychain"
    )
    assert err.endswith(f"set `[secrets] allow_plaintext_keyring = true` in {config_file}\n")
    assert err.count("\n") == 1 and "keyrings.cryptfile" in err
    assert stdin.tell() == 0  # no key was read
    assert not Path(plaintext_keyring.file_path).exists()


def test_set_keys_into_a_plaintext_keyring_the_config_allows(config_file, plaintext_keyring, monkeypatch, capsys):
    config_file.write_text(CONFIG + "[secrets]\nallow_plaintext_keyring = true\n", encoding="utf-8")
    pipe_stdin(monkeypatch, f"{PUBLIC}\n{PRIVATE}\n")
    code, out, err = run(["tenants", "--config", str(config_file), "set-keys", "acme"], capsys)
    assert code == 0
    # Never "in the OS keyring": it says what the keys are in.
    assert out == "stored the API keys of tenant 'acme' in the UNENCRYPTED keyring keyrings.alt.file.PlaintextKeyring\n"
    assert err == (
        "mcp-server-connectwise: warning: the keyring backend keyrings.alt.file.PlaintextKeyring keeps API keys "
        f"unencrypted on disk; allowed by `[secrets] allow_plaintext_keyring = true` in {config_file}, which is for "
        "test rigs and throwaway machines only\n"
    )
    assert plaintext_keyring.get_password(SERVICE_NAME, "acme/private_key") == PRIVATE

    code, out, err = run(["tenants", "--config", str(config_file), "list"], capsys)
    assert code == 0 and "keys: present" in out and err.count("warning:") == 1


def test_list_with_a_refused_plaintext_keyring(config_file, plaintext_keyring, capsys) -> None:
    code, out, err = run(["tenants", "--config", str(config_file), "list"], capsys)
    assert code == 0 and out.count("keys: unknown") == 2
    assert err.startswith(
        "mcp-server-connectwise: keys unknown: the keyring backend keyrings.alt.file.PlaintextKeyring"
    )
    assert err.count("\n") == 1


# --- init ---------------------------------------------------------------------------------------------------


def test_init_writes_the_example_where_the_config_belongs(tmp_path, capsys) -> None:
    path = tmp_path / "new" / "dir" / "tenants.toml"
    code, out, err = run(["tenants", "--config", str(path), "init"], capsys)
    assert (code, err) == (0, "")
    assert path.read_text(encoding="utf-8") == example_config()
    assert out.splitlines()[0] == f"wrote an example config to {path}"
    assert "tenants set-keys NAME" in out
    # What to fill in, the next command says, on one line.
    code, out, err = run(["tenants", "--config", str(path), "list"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"mcp-server-connectwise: {path}: tenant 'acme': key 'client_id': is a placeholder")
    assert err.count("\n") == 1


def test_init_follows_the_environment_and_the_default_location(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CONNECTWISE_MCP_CONFIG", str(tmp_path / "from-env.toml"))
    assert run(["tenants", "init"], capsys)[0] == 0
    assert (tmp_path / "from-env.toml").read_text(encoding="utf-8") == example_config()
    if sys.platform == "linux":  # XDG variables steer platformdirs on Linux only
        monkeypatch.delenv("CONNECTWISE_MCP_CONFIG")
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        assert run(["tenants", "init"], capsys)[0] == 0
        assert (tmp_path / "xdg" / "mcp-server-connectwise" / "tenants.toml").is_file()


def test_init_never_overwrites_a_config(config_file, capsys) -> None:
    code, out, err = run(["--config", str(config_file), "tenants", "init"], capsys)
    assert (code, out) == (2, "")
    assert err == (
        f"mcp-server-connectwise: {config_file} already exists, so it was left as it is: edit it, or give --config "
        "another path to write a new one\n"
    )
    assert config_file.read_text(encoding="utf-8") == CONFIG


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
        '[tenants.acme]\ncompany_id = "acme"\nclient_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"\nbase_url = "http://cw.example.com/apis/3.0"\n'
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
