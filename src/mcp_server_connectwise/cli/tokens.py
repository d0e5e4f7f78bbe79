"""`tokens create NAME --tenants a,b | list | revoke NAME | metrics`: bearer tokens for the HTTP and SSE
transports, and the one `GET /metrics` takes.

The token is printed once and never written anywhere; the config gets only its SHA-256 (a principal's
`token_sha256`, or `[http] metrics_token_sha256`), and `list` shows principals and their tenants, never a hash. Python has no TOML writer in our dependencies, so the file is edited
as text: the principal's table is replaced in place, appended or (revoke) cut out (the metrics key replaced or
put under `[http]`), and the result must parse to exactly the old config with that one change, and load cleanly, before it atomically replaces the file. Comments and
layout elsewhere are left byte for byte as they were.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import re
import stat
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from mcp_server_connectwise.cli.arguments import PROGRAM, UsageError, add_config_option

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
METRICS_KEY = "metrics_token_sha256"  # in [http]


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("tokens", help="manage bearer tokens for the HTTP and SSE transports")
    add_config_option(parser)
    actions = parser.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a principal's token: printed once, only its hash is stored")
    create.add_argument("name", help="the principal's name, as it will appear in the audit log")
    create.add_argument("--tenants", required=True, metavar="A,B", help="comma-separated tenants it may use")
    create.add_argument(
        "--permissions",
        default="mcp",
        metavar="P,Q",
        help="what the token may do: mcp (the MCP endpoint, the default), alerts (POST /alerts only), or both",
    )
    create.add_argument(
        "--member",
        metavar="IDENTIFIER",
        help="the principal's ConnectWise member: its writes act as that member (impersonation), its time is logged for it",
    )
    actions.add_parser("list", help="list the principals and their tenants (never a token or its hash)")
    revoke = actions.add_parser("revoke", help="remove a principal from the config: its token stops working")
    revoke.add_argument("name", help="the principal's name")
    actions.add_parser(
        "metrics", help="create (or replace) the token GET /metrics takes: printed once, only its hash is stored"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.tokens_command == "create":
        return _create(args.name, args.tenants, args.permissions, args.member, args.config)
    if args.tokens_command == "list":
        return _list(args.config)
    if args.tokens_command == "revoke":
        return _revoke(args.name, args.config)
    if args.tokens_command == "metrics":
        return _metrics(args.config)
    raise AssertionError(f"unhandled tokens command {args.tokens_command}")


def _list(config_arg: str | None) -> int:
    from mcp_server_connectwise.config import TOKENS_CREATE_HINT, load_config

    config = load_config(config_arg)
    principals = sorted(config.http.principals.values(), key=lambda principal: principal.name)
    if not principals:
        print(f"No principals in {config.path}: create one with {TOKENS_CREATE_HINT}")
        return 0
    print(f"Principals in {config.path}:")
    width = max(len(principal.name) for principal in principals)
    for principal in principals:
        print(
            f"  {principal.name.ljust(width)}  tenants: {', '.join(principal.tenants)}"
            f"  permissions: {', '.join(principal.permissions)}"
            + (f"  member: {principal.member}" if principal.member else "")
        )
    return 0


def _revoke(name: str, config_arg: str | None) -> int:
    import sys

    from mcp_server_connectwise.config import ConfigError, did_you_mean, load_config

    config = load_config(config_arg)
    assert config.path is not None  # load_config always records where it read from
    if name not in config.http.principals:
        known = ", ".join(sorted(config.http.principals)) or "none"
        print(
            f"{PROGRAM}: no principal {name[:80]!r} in {config.path}{did_you_mean(name, config.http.principals)}; "
            f"principals: {known}",
            file=sys.stderr,
        )
        return 1
    path = config.path.resolve()
    text, status = _read(path)
    edited = _without_table(text, name)
    expected = copy.deepcopy(tomllib.loads(text))
    del expected["http"]["principals"][name]
    if edited is None or _without_empty_http(_parsed(edited)) != _without_empty_http(expected):
        raise ConfigError(
            f"{path}: cannot remove principal '{name}' without changing other settings, so the file was left as it "
            f"was; it is not written as its own [http.principals.{name}] table: delete it by hand"
        )
    _replace_file(path, edited, status)
    print(f"revoked principal '{name}' in {config.path}; its token stops working when the server restarts")
    return 0


def _create(name: str, tenants_arg: str, permissions_arg: str, member: str | None, config_arg: str | None) -> int:
    from mcp_server_connectwise.config import PRINCIPAL_NAME, PRINCIPAL_NAME_RULE, load_config
    from mcp_server_connectwise.config.models import MEMBER_IDENTIFIER, MEMBER_IDENTIFIER_RULE, PERMISSIONS
    from mcp_server_connectwise.http_auth import hash_token, new_token

    if not PRINCIPAL_NAME.fullmatch(name):
        raise UsageError(f"principal {name[:80]!r}: {PRINCIPAL_NAME_RULE}")
    tenants = list(dict.fromkeys(part.strip() for part in tenants_arg.split(",") if part.strip()))
    if not tenants:
        raise UsageError("--tenants needs at least one tenant name, e.g. --tenants acme,globex")
    permissions = list(dict.fromkeys(part.strip() for part in permissions_arg.split(",") if part.strip()))
    if not permissions or any(permission not in PERMISSIONS for permission in permissions):
        raise UsageError(f"--permissions takes {' and/or '.join(PERMISSIONS)}, e.g. --permissions alerts")
    if member is not None and not MEMBER_IDENTIFIER.fullmatch(member):
        raise UsageError(f"--member {member[:80]!r} {MEMBER_IDENTIFIER_RULE}")
    config = load_config(config_arg)
    for tenant in tenants:
        config.tenant(tenant)  # refuses an unknown tenant, naming the known ones
    assert config.path is not None  # load_config always records where it read from
    replacing = name in config.http.principals

    token = new_token()
    _write_principal(config.path.resolve(), name, hash_token(token), tenants, permissions, member)

    if replacing:
        print(
            f"replaced principal '{name}' (tenants {', '.join(tenants)}) in {config.path}; "
            "its previous token stops working when the server restarts"
        )
    else:
        print(
            f"created principal '{name}' (tenants {', '.join(tenants)}) in {config.path}; "
            "restart a running server to apply it"
        )
    print(f"Bearer token for '{name}', shown only this once and stored nowhere (the config keeps only its SHA-256);")
    print("give it to the client now, as the header 'Authorization: Bearer <token>':")
    print(token)
    return 0


def _metrics(config_arg: str | None) -> int:
    from mcp_server_connectwise.config import ConfigError, load_config
    from mcp_server_connectwise.http_auth import hash_token, new_token

    config = load_config(config_arg)
    assert config.path is not None  # load_config always records where it read from
    replacing = config.http.metrics_token_sha256 is not None
    path = config.path.resolve()
    token = new_token()
    token_sha256 = hash_token(token)
    text, status = _read(path)
    edited = _with_http_key(text, METRICS_KEY, token_sha256)
    expected = copy.deepcopy(tomllib.loads(text))
    expected.setdefault("http", {})[METRICS_KEY] = token_sha256
    if _parsed(edited) != expected:
        raise ConfigError(
            f"{path}: cannot set [http] {METRICS_KEY} without changing other settings, so the file was left as it "
            f"was; write http as an [http] table (not inline or dotted keys) and retry"
        )
    _replace_file(path, edited, status)
    what = "replaced the metrics token; the previous one stops working" if replacing else "created the metrics token"
    print(f"{what} in {config.path} ([http] {METRICS_KEY}); restart a running server to apply it")
    print("Bearer token for GET /metrics, shown only this once and stored nowhere (the config keeps only its SHA-256);")
    print("give it to the scraper now, as the header 'Authorization: Bearer <token>':")
    print(token)
    return 0


def _with_http_key(text: str, key: str, value: str) -> str:
    """`text` with `key = "value"` in its `[http]` table: the key's line replaced, else put right under the
    header; a file without an `[http]` header gets one at its end."""
    newline = "\r\n" if "\r\n" in text else "\n"
    line = f"{key} = {_toml_string(value)}{newline}"
    lines = text.splitlines(keepends=True)
    block = _table_block(lines, ["http"])
    if block is None:
        if text and not text.endswith(("\n", "\r")):
            text += newline
        return text + (newline if text else "") + "[http]" + newline + line
    start, end = block
    assignment = re.compile(rf"\s*{re.escape(key)}\s*=")
    index = next((i for i in range(start + 1, end) if assignment.match(lines[i])), None)
    if index is None:
        lines.insert(start + 1, line)
    else:
        lines[index] = line
    return "".join(lines)


def _write_principal(
    path: Path, name: str, token_sha256: str, tenants: list[str], permissions: list[str], member: str | None
) -> None:
    from mcp_server_connectwise.config import ConfigError

    text, status = _read(path)
    newline = "\r\n" if "\r\n" in text else "\n"
    table = _principal_table(name, token_sha256, tenants, permissions, member, newline)
    edited = _with_table(text, name, table, newline)

    expected = copy.deepcopy(tomllib.loads(text))
    principals = expected.setdefault("http", {}).setdefault("principals", {})
    principals[name] = {"token_sha256": token_sha256, "tenants": tenants}
    if permissions != ["mcp"]:
        principals[name]["permissions"] = permissions
    if member is not None:
        principals[name]["member"] = member
    if _parsed(edited) != expected:
        # The principal (or [http]) is written in a form a table header cannot replace, e.g. an inline table.
        raise ConfigError(
            f"{path}: cannot add [http.principals.{name}] without changing other settings, so the file was left "
            f"as it was; write http.principals as [http.principals.NAME] tables (remove any old '{name}') and retry"
        )
    _replace_file(path, edited, status)


def _read(path: Path) -> tuple[str, os.stat_result]:
    from mcp_server_connectwise.config import ConfigError

    try:
        with path.open(encoding="utf-8", newline="") as file:  # newline="": keep CRLF files CRLF
            return file.read(), path.stat()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from None


def _principal_table(
    name: str, token_sha256: str, tenants: list[str], permissions: list[str], member: str | None, newline: str
) -> str:
    key = name if BARE_KEY.fullmatch(name) else f'"{name}"'  # names are plain: no escaping needed
    lines = [
        f"[http.principals.{key}]",
        "# Created by `mcp-server-connectwise tokens create`: the token itself is not stored anywhere.",
        f'token_sha256 = "{token_sha256}"',
        "tenants = [" + ", ".join(f'"{tenant}"' for tenant in tenants) + "]",
    ]
    if permissions != ["mcp"]:  # the default is left unsaid
        lines.append("permissions = [" + ", ".join(f'"{permission}"' for permission in permissions) + "]")
    if member is not None:
        lines.append(f"member = {_toml_string(member)}")
    return newline.join(lines) + newline


def _toml_string(value: str) -> str:
    """`value` as a TOML basic string (JSON's escapes are TOML's for the characters a member may hold)."""
    return json.dumps(value, ensure_ascii=False)


def _table_block(lines: list[str], target: list[str]) -> tuple[int, int] | None:
    """The lines [start, end) of the table whose header is `target` (`["http", "principals", NAME]`), or None
    when the file has no such header."""
    headers = [(index, _header_path(line)) for index, line in enumerate(lines)]
    headers = [(index, header) for index, header in headers if header is not None]
    for position, (start, header) in enumerate(headers):
        if header != target:
            continue
        end = headers[position + 1][0] if position + 1 < len(headers) else len(lines)
        # Comments and blank lines just above the next header introduce that table: keep them.
        while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
            end -= 1
        return start, end
    return None


def _with_table(text: str, name: str, table: str, newline: str) -> str:
    """`text` with the principal's table block replaced by `table`, or with `table` appended."""
    lines = text.splitlines(keepends=True)
    block = _table_block(lines, ["http", "principals", name])
    if block is not None:
        start, end = block
        return "".join(lines[:start]) + table + "".join(lines[end:])
    if text and not text.endswith(("\n", "\r")):
        text += newline
    return text + (newline if text else "") + table


def _without_table(text: str, name: str) -> str | None:
    """`text` without the principal's table block and the blank lines just above it, which set it apart (as
    `_with_table` puts them there: create then revoke gives the file back as it was); None when it has no block."""
    lines = text.splitlines(keepends=True)
    block = _table_block(lines, ["http", "principals", name])
    if block is None:
        return None
    start, end = block
    while start > 0 and not lines[start - 1].strip():
        start -= 1
    return "".join(lines[:start]) + "".join(lines[end:])


def _header_path(line: str) -> list[str] | None:
    """The key path of a `[table]` or `[[array]]` header line, or None for any other line."""
    if not line.lstrip().startswith("["):
        return None
    try:
        parsed: Any = tomllib.loads(line.strip())
    except tomllib.TOMLDecodeError:
        return None  # e.g. a line of a multi-line array
    path: list[str] = []
    while isinstance(parsed, (dict, list)) and parsed:
        if isinstance(parsed, list):
            parsed = parsed[0]
            continue
        key, parsed = next(iter(parsed.items()))
        path.append(key)
    return path


def _without_empty_http(parsed: dict[str, Any] | None) -> dict[str, Any] | None:
    """`parsed` without an empty http.principals or http table: the last principal's table may have been all that
    made them."""
    if parsed is None:
        return None
    http = parsed.get("http")
    if isinstance(http, dict) and http.get("principals") == {}:
        http = {key: value for key, value in http.items() if key != "principals"}
        parsed = {**parsed, "http": http}
    if parsed.get("http") == {}:
        parsed = {key: value for key, value in parsed.items() if key != "http"}
    return parsed


def _parsed(text: str) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None


def _replace_file(path: Path, text: str, status: os.stat_result) -> None:
    """Prove the text loads, write it beside the file, then swap it in atomically with the same permissions."""
    from mcp_server_connectwise.config import ConfigError, check_config_text

    check_config_text(text, path)  # the same validation, and the same words, the server will apply
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, stat.S_IMODE(status.st_mode))
        if hasattr(os, "chown") and (status.st_uid, status.st_gid) != (os.getuid(), os.getgid()):
            # Root editing another user's file keeps it theirs; anyone else cannot, like any editor.
            with contextlib.suppress(PermissionError):
                os.chown(temp, status.st_uid, status.st_gid)
        os.replace(temp, path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the file: {exc.strerror or exc}") from None
    finally:
        temp.unlink(missing_ok=True)
