"""`config CLIENT`: the entry that starts this installation in an MCP client, printed or merged into the client's
config file (every other server kept, a backup beside it, an unreadable file refused and left untouched)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from mcp_server_connectwise.cli import main
from mcp_server_connectwise.cli.config import CLIENTS
from mcp_server_connectwise.cli.demo import banner

from support.registry import READS

SCRIPT = str(Path(shutil.which("mcp-server-connectwise", path=str(Path(sys.executable).parent)) or "").absolute())
TENANTS = (
    '[tenants.acme]\ncompany_id = "acme"\nclient_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"\n'
    'site = "api-na.myconnectwise.net"\n'
)
OTHERS = {
    "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me"]},
    "github": {"command": "docker", "args": ["run", "-i", "ghcr.io/github/github-mcp-server"], "env": {"X": "1"}},
}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A home and app config dir of the test's own, where each client's file is looked for."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("CONNECTWISE_MCP_CONFIG", raising=False)
    return tmp_path


def run(*argv: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    return int(exited.value.code or 0)


def test_it_prints_the_entry_with_this_installations_absolute_path(home, capsys):
    tenants = home / "tenants.toml"
    tenants.write_text(TENANTS)
    assert run("config", "claude-desktop", "--config", str(tenants), "--tenant", "acme", "--read-only") == 0
    out, err = capsys.readouterr()
    entry = json.loads(out)["mcpServers"]["connectwise-acme"]
    assert entry == {"command": SCRIPT, "args": ["serve", "--config", str(tenants), "--tenant", "acme", "--read-only"]}
    assert Path(entry["command"]).is_absolute()
    assert str(home / "config" / "Claude" / "claude_desktop_config.json") in err


@pytest.mark.parametrize(
    ("client", "path", "servers", "typed"),
    [
        ("claude-desktop", "config/Claude/claude_desktop_config.json", "mcpServers", False),
        ("claude-code", ".claude.json", "mcpServers", True),
        ("cursor", ".cursor/mcp.json", "mcpServers", False),
        ("vscode", "config/Code/User/mcp.json", "servers", True),
    ],
)
def test_write_keeps_every_other_server_and_key_adds_ours_and_keeps_a_backup(
    home, capsys, client, path, servers, typed
):
    config = home / path
    config.parent.mkdir(parents=True, exist_ok=True)
    before = json.dumps({"theme": "dark", servers: OTHERS, "numStartups": 7}, indent=4)
    config.write_text(before)
    assert run("config", client, "--write") == 0
    written = json.loads(config.read_text())
    ours = {"type": "stdio"} if typed else {}
    assert written == {
        "theme": "dark",
        servers: {**OTHERS, "connectwise": {**ours, "command": SCRIPT, "args": ["serve"]}},
        "numStartups": 7,
    }
    [backup] = config.parent.glob(f"{config.name}.*.bak")
    assert backup.read_text() == before
    assert f"added server 'connectwise' in {config}; what it held is in {backup}" in capsys.readouterr().out


def test_write_replaces_our_own_entry_and_creates_a_file_that_is_not_there(home, capsys):
    assert run("config", "cursor", "--write") == 0
    path = home / ".cursor" / "mcp.json"
    assert json.loads(path.read_text())["mcpServers"]["connectwise"]["args"] == ["serve"]
    assert list(path.parent.glob("*.bak")) == []  # nothing was there to keep
    assert run("config", "cursor", "--write", "--read-only") == 0
    assert json.loads(path.read_text())["mcpServers"] == {
        "connectwise": {"command": SCRIPT, "args": ["serve", "--read-only"]}
    }
    assert "replaced server 'connectwise'" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"mcpServers": {"a": {}},}', "cannot read .* as JSON \\(line 1 column 2[56]: "),
        ('// my servers\n{"servers": {}}', "cannot read .* as JSON"),  # VS Code allows comments; we cannot keep them
        ('["not", "an", "object"]', "it is not a JSON object"),
        ('{"mcpServers": ["a"]}', "its 'mcpServers' is not an object"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_a_file_it_cannot_parse_is_refused_in_one_line_and_left_as_it_was(home, capsys, text, why):
    config = home / "config" / "Claude" / "claude_desktop_config.json"
    config.parent.mkdir(parents=True)
    before = text if isinstance(text, bytes) else text.encode()
    config.write_bytes(before)
    tenants = home / "tenants.toml"
    tenants.write_text(TENANTS)
    assert run("config", "claude-desktop", "--config", str(tenants), "--write") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "left as it is" in err
    assert re.search(why, err), err
    assert config.read_bytes() == before and sorted(config.parent.iterdir()) == [config]


def test_an_unknown_tenant_is_refused_before_anything_is_written(home, capsys):
    tenants = home / "tenants.toml"
    tenants.write_text(TENANTS)
    assert run("config", "claude-code", "--config", str(tenants), "--tenant", "acme2", "--write") == 2
    assert "unknown tenant 'acme2'" in capsys.readouterr().err
    assert not (home / ".claude.json").exists()


def test_the_demo_banner_prints_the_same_entry(home):
    import argparse

    text = banner(argparse.Namespace(transport="stdio"), home / "audit.jsonl")
    snippet = CLIENTS["claude-desktop"].snippet("connectwise-demo", ["demo"])
    assert json.dumps(snippet, indent=2) in text


async def test_the_entry_written_starts_this_server(home):
    tenants = home / "tenants.toml"
    tenants.write_text(TENANTS)
    assert run("config", "vscode", "--config", str(tenants), "--read-only", "--write") == 0
    entry = json.loads((home / "config" / "Code" / "User" / "mcp.json").read_text())["servers"]["connectwise"]
    keyring = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}  # never the machine's (see conftest)
    async with Client(StdioServerParameters(command=entry["command"], args=entry["args"], env=keyring)) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
    assert listed == READS
