"""`config CLIENT [--tenant NAME] [--read-only] [--write [--file PATH]]`: the entry that starts this server in
an MCP client - Claude Desktop, Claude Code, Cursor or VS Code - with the absolute path of this installation.

Printed, it goes to stdout as JSON to paste (where to paste it goes to stderr). With `--write` it is merged into
the client's own user config file: every other server and key stays as it was, a same-named entry of ours is
replaced, and what the file held before is kept beside it as a timestamped `.bak`. A file that is not a JSON
object (comments included: VS Code allows them) is refused and left untouched.

`demo` prints its Claude Desktop snippet with the same `Client.snippet`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mcp_server_connectwise.cli.arguments import PROGRAM, UsageError, add_config_option

ENTRY_NAME = "connectwise"  # the entry's name in the client's config; `--tenant acme` names it connectwise-acme


def _app_config_dir() -> Path:
    """Where desktop apps keep their user config: the folders Claude Desktop and VS Code use on each platform."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


@dataclass(frozen=True)
class Client:
    """An MCP client: how its config file names the servers table and types an entry, and where the file is."""

    title: str
    servers_key: str  # the top-level object of servers: "mcpServers", or VS Code's "servers"
    typed: bool  # whether an entry says "type": "stdio"
    path_in_home: tuple[str, ...] = ()  # the user config file under the home directory ...
    path_in_app_config: tuple[str, ...] = ()  # ... or under the platform's app config dir

    def path(self) -> Path:
        if self.path_in_home:
            return Path.home().joinpath(*self.path_in_home)
        return _app_config_dir().joinpath(*self.path_in_app_config)

    def entry(self, args: list[str]) -> dict[str, Any]:
        """The server entry running this installation with `args`."""
        command = launch_command()
        return {**({"type": "stdio"} if self.typed else {}), "command": command[0], "args": [*command[1:], *args]}

    def snippet(self, name: str, args: list[str]) -> dict[str, Any]:
        """The entry as the client's config file holds it, to paste."""
        return {self.servers_key: {name: self.entry(args)}}


CLIENTS = {
    "claude-desktop": Client(
        "Claude Desktop", "mcpServers", typed=False, path_in_app_config=("Claude", "claude_desktop_config.json")
    ),
    # The user scope of `claude mcp add --scope user`: every project sees it.
    "claude-code": Client("Claude Code", "mcpServers", typed=True, path_in_home=(".claude.json",)),
    "cursor": Client("Cursor", "mcpServers", typed=False, path_in_home=(".cursor", "mcp.json")),
    "vscode": Client("VS Code", "servers", typed=True, path_in_app_config=("Code", "User", "mcp.json")),
}


def launch_command() -> list[str]:
    """How to start this installation: its console script beside this interpreter, else the one on PATH, else
    this interpreter running the package."""
    script = shutil.which(PROGRAM, path=str(Path(sys.executable).parent)) or shutil.which(PROGRAM)
    return [str(Path(script).absolute())] if script else [sys.executable, "-m", "mcp_server_connectwise"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "config", help="print (or --write) the entry that starts this server in an MCP client's config"
    )
    parser.add_argument("client", choices=list(CLIENTS))
    add_config_option(parser)
    parser.add_argument("--tenant", metavar="NAME", help="default tenant of the entry's server")
    parser.add_argument("--read-only", action="store_true", help="the entry serves read-only")
    parser.add_argument("--write", action="store_true", help="merge the entry into the client's config file")
    parser.add_argument("--file", metavar="PATH", help="the config file to write instead of the client's user config")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    client = CLIENTS[args.client]
    name = f"{ENTRY_NAME}-{args.tenant}" if args.tenant else ENTRY_NAME
    server_args = ["serve", *_config_args(args.config, args.tenant)]
    if args.tenant:
        server_args += ["--tenant", args.tenant]
    if args.read_only:
        server_args.append("--read-only")
    path = Path(args.file).expanduser().absolute() if args.file else client.path()
    if not args.write:
        print(json.dumps(client.snippet(name, server_args), indent=2))
        print(f"{PROGRAM}: add this to {path}, or run again with --write", file=sys.stderr)
        return 0
    replaced, backup = merge_entry(path, client.servers_key, name, client.entry(server_args))
    kept = f"; what it held is in {backup}" if backup else ""
    print(f"{'replaced' if replaced else 'added'} server {name!r} in {path}{kept}. Restart {client.title} to load it.")
    return 0


def _config_args(explicit: str | None, tenant: str | None) -> list[str]:
    """`--config PATH` when the config was named (a client does not see the shell's $CONNECTWISE_MCP_CONFIG),
    after checking that the config, if there is one yet, loads and has the tenant."""
    from mcp_server_connectwise.config import CONFIG_ENV, config_path, load_config

    path = config_path(explicit)
    if path.is_file():
        config = load_config(path)
        if tenant is not None:
            config.tenant(tenant)
    else:
        print(
            f"{PROGRAM}: warning: no config at {path} yet: the server will not start until "
            f"`{PROGRAM} tenants init` writes one there and you fill it in",
            file=sys.stderr,
        )
    return ["--config", str(path)] if explicit is not None or os.environ.get(CONFIG_ENV) else []


def merge_entry(path: Path, servers_key: str, name: str, entry: dict[str, Any]) -> tuple[bool, Path | None]:
    """Set `entry` as server `name` in the JSON config at `path`, keeping everything else; whether it replaced
    an entry of that name, and the backup of the file as it was (None when there was no file)."""
    document: dict[str, Any] = {}
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
            document = json.loads(text) if text.strip() else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"cannot read {path} as JSON ({_reason(exc)}), so it was left as it is") from None
    servers = document.get(servers_key, {}) if isinstance(document, dict) else None
    if not isinstance(servers, dict):
        what = f"its {servers_key!r} is not an object" if isinstance(document, dict) else "it is not a JSON object"
        raise UsageError(f"{path}: {what}, so it was left as it is")
    replaced = name in servers
    document[servers_key] = {**servers, name: entry}
    written = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # then renamed over it: never half a file
    try:
        backup = _backup(path) if path.exists() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        written.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if backup is not None:
            shutil.copymode(backup, written)  # ~/.claude.json is private to its user: so is what replaces it
        os.replace(written, path)
    except OSError as exc:
        written.unlink(missing_ok=True)
        raise UsageError(f"cannot write {exc.filename or path}: {exc.strerror or exc}") from None
    return replaced, backup


def _backup(path: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.{stamp}.bak")
    counter = 1
    while backup.exists():
        backup = path.with_name(f"{path.name}.{stamp}-{counter}.bak")
        counter += 1
    shutil.copy2(path, backup)
    return backup


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno} column {exc.colno}: {exc.msg}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return "not UTF-8 text"
