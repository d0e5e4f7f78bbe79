"""`tenants init | set-keys NAME | list | remove NAME`: the config file, and tenants' API keys in the OS keyring.

Keys are read without echo (or from two piped lines, for scripts) and go straight to the keyring; no
output of these commands ever contains a key. `init` writes the packaged tenants.example.toml where the config
is read from, and never over an existing file.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from mcp_server_connectwise.cli.arguments import PROGRAM, UsageError, add_config_option

if TYPE_CHECKING:
    from mcp_server_connectwise.config import AppConfig
    from mcp_server_connectwise.secrets import KeyStore


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("tenants", help="write the config file; manage tenants' API keys in the OS keyring")
    add_config_option(parser)
    actions = parser.add_subparsers(dest="tenants_command", metavar="ACTION", required=True)
    actions.add_parser("init", help="write an example config (tenants.example.toml) where the config is read from")
    set_keys = actions.add_parser("set-keys", help="store a tenant's public and private API keys in the keyring")
    set_keys.add_argument("name")
    actions.add_parser("list", help="list tenants and whether their keys are present (never the keys)")
    remove = actions.add_parser("remove", help="delete a tenant's keys from the keyring")
    remove.add_argument("name")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mcp_server_connectwise.config import load_config
    from mcp_server_connectwise.secrets import KeyStore

    if args.tenants_command == "init":
        return _init(args.config)
    if args.tenants_command in ("set-keys", "list"):
        config = load_config(args.config)
        store = KeyStore.for_config(config, warn=_warn)
        if args.tenants_command == "set-keys":
            return _set_keys(args.name, config, store)
        return _list(config, store)
    if args.tenants_command == "remove":
        # No config needed: removing the keys of a tenant already deleted from the config is the cleanup case.
        return _remove(args.name, KeyStore(warn=_warn))
    raise AssertionError(f"unhandled tenants command {args.tenants_command}")


def _warn(message: str) -> None:
    print(f"{PROGRAM}: warning: {message}", file=sys.stderr, flush=True)


def _init(config_arg: str | None) -> int:
    from mcp_server_connectwise.config import config_path, example_config

    path = config_path(config_arg)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8", newline="") as file:  # "x": never over an existing file
            file.write(example_config())
    except FileExistsError:
        raise UsageError(
            f"{path} already exists, so it was left as it is: edit it, or give --config another path to write a new one"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename or path}: {exc.strerror or exc}") from None
    print(f"wrote an example config to {path}")
    print("Fill in each tenant's company_id, client_id and site (or base_url), then store its API keys with:")
    print(f"  {PROGRAM} tenants set-keys NAME")
    return 0


def _set_keys(name: str, config: AppConfig, store: KeyStore) -> int:
    from mcp_server_connectwise.connectwise import ApiCredentials

    tenant = config.tenant(name)
    # Checked before prompting, so nobody types keys into a machine that cannot keep them.
    replacing = store.has(tenant.name)
    public_key, private_key = _read_keys(tenant.name)
    store.set(tenant.name, ApiCredentials(public_key=public_key, private_key=private_key))
    verb = "replaced" if replacing else "stored"
    plaintext = store.plaintext_backend()
    where = "the OS keyring" if plaintext is None else f"the UNENCRYPTED keyring {plaintext}"
    print(f"{verb} the API keys of tenant '{tenant.name}' in {where}")
    return 0


def _read_keys(tenant: str) -> tuple[str, str]:
    if sys.stdin is not None and sys.stdin.isatty():
        public_key = getpass.getpass(f"Public key for tenant '{tenant}': ")
        private_key = getpass.getpass(f"Private key for tenant '{tenant}': ")
    elif sys.stdin is not None:
        # Exactly two lines: reading on would block a script that keeps the pipe open.
        public_key = sys.stdin.readline()
        private_key = sys.stdin.readline()
    else:
        raise UsageError(
            "no standard input: type the keys on a terminal, or pipe two lines (public key, then private key)"
        )
    return _checked_key("public", public_key), _checked_key("private", private_key)


def _checked_key(which: str, value: str) -> str:
    key = value.strip()
    if not key:
        raise UsageError(
            f"the {which} key is empty: give the public key, then the private key (on a terminal, or as two lines on stdin)"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        # Never quote the value: it is (part of) a secret.
        raise UsageError(f"the {which} key contains spaces or control characters; paste it alone on its line")
    return key


def _list(config: AppConfig, store: KeyStore) -> int:
    from mcp_server_connectwise.secrets import KeyringUnavailable

    rows = []
    unavailable: KeyringUnavailable | None = None
    for tenant in config.tenants.values():
        label = f"{tenant.name} (default)" if tenant.name == config.default_tenant else tenant.name
        location = f"site={tenant.site}" if tenant.site is not None else f"base_url={tenant.base_url}"
        access = "read-only" if tenant.read_only else "read-write"
        keys = "unknown"
        if unavailable is None:
            try:
                keys = "present" if store.has(tenant.name) else "missing"
            except KeyringUnavailable as exc:  # the config is still worth listing; say once why keys are unknown
                unavailable = exc
        rows.append((label, f"company={tenant.company_id}", location, access, f"keys: {keys}"))

    print(f"Tenants in {config.path}:")
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  " + "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        )
    if any(row[-1] == "keys: missing" for row in rows):
        print("Store missing keys with: mcp-server-connectwise tenants set-keys NAME")
    if unavailable is not None:
        print(f"{PROGRAM}: keys unknown: {unavailable}", file=sys.stderr)
    return 0


def _remove(name: str, store: KeyStore) -> int:
    if store.remove(name):
        print(f"removed the API keys of tenant '{name}' from the OS keyring")
        return 0
    print(f"{PROGRAM}: no API keys stored for tenant '{name}'", file=sys.stderr)
    return 1
