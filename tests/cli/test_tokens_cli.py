"""`tokens create NAME --tenants a,b`: the token is printed once, only its hash reaches the config, the file
keeps everything else and still loads, a principal is replaced in place, and bad input leaves the file alone."""

from __future__ import annotations

import argparse
import os
import re
import stat
from pathlib import Path

import pytest

from mcp_server_connectwise.cli import main
from mcp_server_connectwise.cli.arguments import UsageError
from mcp_server_connectwise.cli.tokens import run as run_tokens
from mcp_server_connectwise.config import ConfigError, load_config
from mcp_server_connectwise.http_auth import PrincipalTokenVerifier, hash_token

CONFIG = """\
# Our tenants.
default_tenant = "acme"

[http]
allowed_hosts = ["mcp.example.com"]  # the reverse proxy's name

[tenants.acme]
company_id = "acme"
client_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"
site = "api-na.myconnectwise.net"

[tenants.globex]
company_id = "globex"
client_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"
site = "api-eu.myconnectwise.net"
"""
TOKEN_LINE = re.compile(r"^cwmcp_[A-Za-z0-9_-]{43}$", re.MULTILINE)


def write(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "tenants.toml"
    path.write_text(text, encoding="utf-8", newline="")
    return path


def create(path: Path, name: str, tenants: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Run the command; return (token, everything printed)."""
    code = run_tokens(
        argparse.Namespace(
            tokens_command="create", name=name, tenants=tenants, permissions="mcp", member=None, config=str(path)
        )
    )
    assert code == 0
    out = capsys.readouterr().out
    tokens = TOKEN_LINE.findall(out)
    assert len(tokens) == 1, out  # printed exactly once
    assert out.count(tokens[0]) == 1
    return tokens[0], out


def assert_nothing_but_the_hash_stored(tmp_path: Path, token: str) -> None:
    files = list(tmp_path.rglob("*"))
    assert [file.name for file in files] == ["tenants.toml"]  # no temp file left behind
    text = files[0].read_text(encoding="utf-8")
    assert token not in text and token.removeprefix("cwmcp_") not in text
    assert hash_token(token) in text


async def test_create_prints_the_token_once_and_stores_only_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path)
    token, out = create(path, "alice", " globex, acme ,globex,", capsys)

    assert out.startswith(
        f"created principal 'alice' (tenants globex, acme) in {path}; restart a running server to apply it\n"
    )
    assert "shown only this once" in out
    assert_nothing_but_the_hash_stored(tmp_path, token)
    assert path.read_text(encoding="utf-8").startswith(CONFIG)  # everything else kept as it was, comments too

    config = load_config(path)
    alice = config.http.principals["alice"]
    assert (alice.token_sha256, alice.tenants) == (hash_token(token), ("globex", "acme"))
    assert config.http.allowed_hosts == ("mcp.example.com",)
    access = await PrincipalTokenVerifier(config.http).verify_token(token)
    assert access is not None and access.client_id == "alice"


async def test_replacing_a_principal_keeps_the_rest_and_revokes_the_old_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path)
    old, _ = create(path, "alice", "acme", capsys)
    bob, _ = create(path, "bob", "globex", capsys)
    new, out = create(path, "alice", "acme,globex", capsys)

    assert out.startswith(
        f"replaced principal 'alice' (tenants acme, globex) in {path}; "
        "its previous token stops working when the server restarts\n"
    )
    text = path.read_text(encoding="utf-8")
    assert text.count("[http.principals.alice]") == 1 and hash_token(old) not in text
    assert text.index("[http.principals.alice]") < text.index("[http.principals.bob]")  # replaced in place
    config = load_config(path)
    assert config.http.principals["alice"].tenants == ("acme", "globex")
    assert config.http.principals["bob"].token_sha256 == hash_token(bob)
    verifier = PrincipalTokenVerifier(config.http)
    assert await verifier.verify_token(old) is None
    assert (await verifier.verify_token(new)).client_id == "alice"  # type: ignore[union-attr]


def test_replacing_a_hand_written_table_keeps_the_comment_of_the_next_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = "ab" * 32
    text = CONFIG.replace(
        "[tenants.acme]",
        f'[ http.principals."alice" ]   # laptop\ntoken_sha256 = "{stale}"\ntenants = [\n  "acme",\n]\n\n'
        "# The main client.\n[tenants.acme]",
    )
    path = write(tmp_path, text)
    token, _ = create(path, "alice", "globex", capsys)
    edited = path.read_text(encoding="utf-8")
    assert stale not in edited and "laptop" not in edited
    assert "# The main client.\n[tenants.acme]" in edited
    assert load_config(path).http.principals["alice"].tenants == ("globex",)
    assert_nothing_but_the_hash_stored(tmp_path, token)


def test_a_dotted_name_gets_a_quoted_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path)
    create(path, "ops.bot", "acme", capsys)
    assert '[http.principals."ops.bot"]' in path.read_text(encoding="utf-8")
    create(path, "ops.bot", "globex", capsys)
    assert load_config(path).http.principals["ops.bot"].tenants == ("globex",)


def test_line_endings_missing_final_newline_and_permissions_are_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, CONFIG.rstrip("\n").replace("\n", "\r\n"))
    os.chmod(path, 0o640)
    create(path, "alice", "acme", capsys)
    raw = path.read_bytes()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert "alice" in load_config(path).http.principals


def test_a_symlinked_config_stays_a_symlink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = write(tmp_path)
    link = tmp_path / "link.toml"
    link.symlink_to(target)
    create(link, "alice", "acme", capsys)
    assert link.is_symlink()
    assert "alice" in load_config(target).http.principals


@pytest.mark.parametrize(
    ("name", "tenants", "error", "message"),
    [
        ("alice", "acme,initech", ConfigError, "unknown tenant 'initech'; known tenants: acme, globex"),
        ("alice", " , ", UsageError, "--tenants needs at least one tenant name, e.g. --tenants acme,globex"),
        (
            "a b",
            "acme",
            UsageError,
            "principal 'a b': a principal name must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
        ),
    ],
)
def test_bad_input_leaves_the_file_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, tenants: str, error: type[Exception], message: str
) -> None:
    path = write(tmp_path)
    with pytest.raises(error) as caught:
        run_tokens(
            argparse.Namespace(
                tokens_command="create", name=name, tenants=tenants, permissions="mcp", member=None, config=str(path)
            )
        )
    assert str(caught.value) == message
    assert path.read_text(encoding="utf-8") == CONFIG
    assert capsys.readouterr().out == ""  # no token was shown for a principal that does not exist


HTTP_LINE = 'allowed_hosts = ["mcp.example.com"]  # the reverse proxy\'s name\n'
INLINE_BOB = '{ token_sha256 = "' + "cd" * 32 + '", tenants = ["acme"] }'


@pytest.mark.parametrize(
    "text",
    [
        CONFIG.replace(HTTP_LINE, HTTP_LINE + f"principals = {{ bob = {INLINE_BOB} }}\n"),
        CONFIG + f"\n[http.principals]\nalice = {INLINE_BOB}\n",
        CONFIG.replace(
            HTTP_LINE,
            HTTP_LINE + 'principals.alice.token_sha256 = "' + "cd" * 32 + '"\nprincipals.alice.tenants = ["acme"]\n',
        ),
        # Text that merely looks like the table's header, inside a (weird but valid) multi-line audit path:
        # editing there would still parse, so only comparing the parsed result catches it.
        CONFIG + '\n[audit]\npath = """audit\n[http.principals.alice]\n[x]\n.jsonl"""\n',
    ],
    ids=["inline-principals", "inline-alice", "dotted-alice", "header-inside-a-string"],
)
def test_a_layout_it_cannot_edit_safely_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    # An inline table or dotted keys can be neither extended nor replaced by a [http.principals.alice] header.
    path = write(tmp_path, text)
    load_config(path)  # a valid config, just not one this command can edit
    with pytest.raises(ConfigError) as caught:
        run_tokens(
            argparse.Namespace(
                tokens_command="create", name="alice", tenants="acme", permissions="mcp", member=None, config=str(path)
            )
        )
    assert str(caught.value) == (
        f"{path}: cannot add [http.principals.alice] without changing other settings, so the file was left as it was; "
        "write http.principals as [http.principals.NAME] tables (remove any old 'alice') and retry"
    )
    assert path.read_text(encoding="utf-8") == text
    assert capsys.readouterr().out == ""
    assert [file.name for file in tmp_path.iterdir()] == ["tenants.toml"]


def test_an_inline_principal_beside_new_tables_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, CONFIG + f"\n[http.principals]\nbob = {INLINE_BOB}\n")
    create(path, "alice", "globex", capsys)
    assert set(load_config(path).http.principals) == {"alice", "bob"}


def test_through_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["tokens", "--config", str(path), "create", "alice", "--tenants", "acme"])
    assert exited.value.code == 0
    (token,) = TOKEN_LINE.findall(capsys.readouterr().out)
    assert_nothing_but_the_hash_stored(tmp_path, token)

    with pytest.raises(SystemExit) as exited:
        main(["tokens", "--config", str(path), "create", "bob", "--tenants", "initech"])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "mcp-server-connectwise: unknown tenant 'initech'; known tenants: acme, globex\n"


def test_an_alerts_token_is_written_with_its_permissions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mcp_server_connectwise.config import load_config

    path = write(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["tokens", "--config", str(path), "create", "rmm", "--tenants", "acme", "--permissions", "alerts"])
    assert exited.value.code == 0
    capsys.readouterr()
    assert 'permissions = ["alerts"]' in path.read_text(encoding="utf-8")
    assert load_config(str(path)).http.principals["rmm"].permissions == ("alerts",)
    with pytest.raises(SystemExit) as exited:
        main(["tokens", "--config", str(path), "create", "x", "--tenants", "acme", "--permissions", "admin"])
    assert exited.value.code == 2 and "--permissions takes mcp and/or alerts" in capsys.readouterr().err


# --- list ---------------------------------------------------------------------------------------------------


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def test_list_shows_principals_and_their_tenants_never_a_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path)
    assert cli(["tokens", "--config", str(path), "list"], capsys) == (
        0,
        f"No principals in {path}: create one with `mcp-server-connectwise tokens create NAME --tenants a,b`\n",
        "",
    )
    alice, _ = create(path, "alice", "globex,acme", capsys)
    bob, _ = create(path, "ops.bot", "acme", capsys)
    code, out, err = cli(["tokens", "--config", str(path), "list"], capsys)
    assert (code, err) == (0, "")
    assert out == (
        f"Principals in {path}:\n  alice    tenants: globex, acme  permissions: mcp\n"
        "  ops.bot  tenants: acme  permissions: mcp\n"
    )
    for token in (alice, bob):
        assert token not in out and hash_token(token) not in out


def test_list_refuses_a_broken_config_like_every_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, CONFIG.replace('client_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"', 'client_id = "x"', 1))
    errors = {
        command: cli([*command.split(), "--config", str(path), *rest], capsys)
        for command, rest in (("tokens", ["list"]), ("tenants", ["list"]), ("serve", ["--transport", "http"]))
    }
    lines = {err for code, out, err in errors.values() if code == 2 and out == ""}
    assert len(lines) == 1  # the same one line from every command
    (line,) = lines
    assert line.startswith(f"mcp-server-connectwise: {path}: tenant 'acme': key 'client_id': must be your")
    assert line.count("\n") == 1


# --- revoke -------------------------------------------------------------------------------------------------


def test_revoke_removes_only_the_principals_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path)
    alice, _ = create(path, "alice", "acme", capsys)
    bob, _ = create(path, "bob", "globex", capsys)
    before = path.read_bytes()
    start = before.index(b"[http.principals.alice]")
    end = before.index(b"[http.principals.bob]")

    code, out, err = cli(["tokens", "--config", str(path), "revoke", "alice"], capsys)
    assert (code, err) == (0, "")
    assert out == f"revoked principal 'alice' in {path}; its token stops working when the server restarts\n"
    assert path.read_bytes() == before[:start] + before[end:]  # everything else byte for byte
    config = load_config(path)
    assert list(config.http.principals) == ["bob"]
    assert hash_token(alice) not in path.read_text() and hash_token(bob) in path.read_text()
    assert [file.name for file in tmp_path.iterdir()] == ["tenants.toml"]


def test_create_then_revoke_gives_the_file_back_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = CONFIG.replace("\n", "\r\n")  # a CRLF file stays one
    path = write(tmp_path, text)
    create(path, "alice", "acme", capsys)
    assert cli(["tokens", "--config", str(path), "revoke", "alice"], capsys)[0] == 0
    assert path.read_bytes() == text.encode()


def test_revoking_a_hand_written_table_keeps_its_neighbours_and_their_comments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = "ab" * 32
    block = f'[ http.principals."alice" ]   # laptop\ntoken_sha256 = "{stale}"\ntenants = [\n  "acme",\n]\n\n'
    text = CONFIG.replace("[tenants.acme]", block + "# The main client.\n[tenants.acme]")
    path = write(tmp_path, text)
    assert cli(["tokens", "--config", str(path), "revoke", "alice"], capsys)[0] == 0
    assert path.read_text(encoding="utf-8") == text.replace(block, "")


def test_revoking_an_unknown_principal_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path)
    create(path, "alice", "acme", capsys)
    before = path.read_bytes()
    code, out, err = cli(["tokens", "--config", str(path), "revoke", "alcie"], capsys)
    assert (code, out) == (1, "")
    assert err == f"mcp-server-connectwise: no principal 'alcie' in {path} (did you mean 'alice'?); principals: alice\n"
    assert path.read_bytes() == before


def test_revoking_a_principal_not_written_as_its_own_table_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = CONFIG + f"\n[http.principals]\nbob = {INLINE_BOB}\n"
    path = write(tmp_path, text)
    code, out, err = cli(["tokens", "--config", str(path), "revoke", "bob"], capsys)
    assert (code, out) == (2, "")
    assert err == (
        f"mcp-server-connectwise: {path}: cannot remove principal 'bob' without changing other settings, so the file "
        "was left as it was; it is not written as its own [http.principals.bob] table: delete it by hand\n"
    )
    assert path.read_text(encoding="utf-8") == text


# --- members and the metrics token --------------------------------------------------------------------------


async def test_a_principal_is_written_with_its_member_and_listed_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path)
    code, out, _ = cli(
        ["tokens", "--config", str(path), "create", "alice", "--tenants", "acme", "--member", "jsmith"], capsys
    )
    assert code == 0
    [token] = TOKEN_LINE.findall(out)
    assert 'member = "jsmith"' in path.read_text(encoding="utf-8")
    config = load_config(path)
    assert config.http.principals["alice"].member == "jsmith"
    access = await PrincipalTokenVerifier(config.http).verify_token(token)
    assert access is not None and access.claims["member"] == "jsmith"
    assert cli(["tokens", "--config", str(path), "list"], capsys)[1] == (
        f"Principals in {path}:\n  alice  tenants: acme  permissions: mcp  member: jsmith\n"
    )
    code, out, err = cli(
        ["tokens", "--config", str(path), "create", "bob", "--tenants", "acme", "--member", "j/smith"], capsys
    )
    assert (code, out) == (2, "")
    assert "--member 'j/smith' must be a ConnectWise member identifier" in err
    assert "bob" not in load_config(path).http.principals


@pytest.mark.parametrize(
    "text",
    [CONFIG, CONFIG.replace("[http]\n", "").replace(HTTP_LINE, ""), CONFIG.replace(HTTP_LINE, HTTP_LINE.strip())],
)
def test_metrics_writes_only_the_tokens_hash_into_http_and_replaces_an_earlier_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = write(tmp_path, text)
    create(path, "alice", "acme", capsys)  # a principal's table after [http], or where [http] would go
    tokens = []
    for _ in range(2):
        code, out, err = cli(["tokens", "--config", str(path), "metrics"], capsys)
        assert (code, err) == (0, "")
        [token] = TOKEN_LINE.findall(out)
        assert out.count(token) == 1 and "shown only this once" in out
        tokens.append(token)
    assert out.startswith(f"replaced the metrics token; the previous one stops working in {path}")
    edited = path.read_text(encoding="utf-8")
    assert edited.count("metrics_token_sha256") == 1 and hash_token(tokens[0]) not in edited
    assert_nothing_but_the_hash_stored(tmp_path, tokens[1])
    config = load_config(path)
    assert config.http.metrics_token_sha256 == hash_token(tokens[1])
    assert "alice" in config.http.principals
    if "[http]\n" in text:
        assert edited.startswith(text.split("[http]\n")[0] + "[http]\nmetrics_token_sha256 = ")  # under its header
