"""`mcp-server-connectwise [--config PATH] audit verify [PATH]`: check the audit log's hash chain and its writes.
`mcp-server-connectwise [--config PATH] audit ack (INTENT_ID ... | --all) [PATH]`: settle interrupted writes.

verify prints one line per finding (`FILE:LINE: why`, or `FILE: why` for a missing file), one per write intent
without an outcome (a process died between announcing a write and recording it: what to check in ConnectWise),
and a closing verdict. Exit 0 if the chain is intact and every intent settled, 1 if not, 2 (via the CLI's
UsageError/ConfigError) if there is nothing to check.

ack appends an acknowledgement line (in the chain like any other) naming the given unsettled intents, or all
of them, once a person has checked their outcome in ConnectWise; after it verify passes again. Exit 0, or 2
(nothing written) for an id that is not an unsettled intent of the log.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_server_connectwise.cli.arguments import PROGRAM, UsageError, add_config_option

if TYPE_CHECKING:
    from mcp_server_connectwise.audit import Intent

# What `AuditLog.intent` returns; any other positional argument of `audit ack` is the log's path.
_INTENT_ID = re.compile(r"[0-9a-f]{16}")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("audit", help="check the audit log")
    add_config_option(parser)
    actions = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify", help="verify the audit log's hash chain and report writes whose outcome was never recorded"
    )
    verify.add_argument("path", nargs="?", help="audit log to verify (default: the configured audit path)")
    ack = actions.add_parser(
        "ack",
        usage=f"{PROGRAM} audit ack [-h] (INTENT_ID [INTENT_ID ...] | --all) [PATH]",
        help="acknowledge write intents without an outcome, once checked in ConnectWise",
    )
    ack.add_argument(
        "items",
        nargs="*",
        metavar="INTENT_ID ... [PATH]",
        help="intent ids as `audit verify` lists them, then the audit log (default: the configured audit path)",
    )
    ack.add_argument("--all", action="store_true", help="acknowledge every write intent without an outcome")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mcp_server_connectwise.config import load_config

    if args.audit_command == "verify":
        return _verify(Path(args.path) if args.path else load_config(args.config).audit.path)
    if args.audit_command == "ack":
        ids = [item for item in args.items if _INTENT_ID.fullmatch(item)]
        paths = [item for item in args.items if not _INTENT_ID.fullmatch(item)]
        if len(paths) > 1:
            raise UsageError(f"audit ack takes one audit log path, not {len(paths)}: {', '.join(paths)}")
        if args.all and ids:
            raise UsageError("audit ack takes intent ids or --all, not both")
        if not args.all and not ids:
            raise UsageError("name the intents to acknowledge (as `audit verify` lists them), or give --all")
        if paths:
            return _ack(Path(paths[0]), None, ids, every=args.all)
        audit = load_config(args.config).audit
        return _ack(audit.path, audit.max_bytes, ids, every=args.all)
    raise AssertionError(f"unhandled audit command {args.audit_command}")


def _describe(intent: Intent) -> str:
    return (
        f"write intent {intent.id} has no outcome: {intent.tool} in tenant {intent.tenant or '?'} by "
        f"{intent.principal} at {intent.ts} ({intent.method} {intent.path})"
    )


def _verify(path: Path) -> int:
    from mcp_server_connectwise.audit import verify_audit

    try:
        result = verify_audit(path)
    except OSError as exc:
        raise UsageError(f"cannot read the audit log {exc.filename or path}: {exc.strerror or exc}") from None
    if not result.files and not result.findings:
        raise UsageError(f"no audit log at {path} (nor rotated files {path.name}.1, ...)")
    for finding in result.findings:
        where = f"{finding.file}:{finding.line}" if finding.line is not None else str(finding.file)
        print(f"{where}: {finding.reason}")
    for intent in result.unsettled:
        print(
            f"{intent.file}:{intent.line}: {_describe(intent)}; it may or may not have reached ConnectWise: "
            f"check {intent.check}"
        )
    checked = f"{result.lines} line(s) in {len(result.files)} file(s)"
    if result.intact:
        verdict = f"audit log {path}: intact, {checked}"
    else:
        verdict = f"audit log {path}: NOT intact, {len(result.findings)} finding(s) after checking {checked}"
    if result.unsettled:
        verdict += (
            f"; {len(result.unsettled)} write intent(s) without an outcome: check them in ConnectWise, then run "
            f"`{PROGRAM} audit ack INTENT_ID ... {path}`"
        )
    print(verdict)
    return 0 if result.passed else 1


def _ack(path: Path, max_bytes: int | None, ids: list[str], *, every: bool) -> int:
    from mcp_server_connectwise.audit import AuditLog, AuditUnavailable, unsettled_intents

    if not path.exists():
        raise UsageError(f"no audit log at {path}")
    try:
        unsettled = {intent.id: intent for intent in unsettled_intents(path)}
    except OSError as exc:
        raise UsageError(f"cannot read the audit log {exc.filename or path}: {exc.strerror or exc}") from None
    unknown = [intent_id for intent_id in ids if intent_id not in unsettled]
    if unknown:
        raise UsageError(
            f"not a write intent without an outcome in {path}: {', '.join(unknown)} (`audit verify` lists them); "
            "nothing was acknowledged"
        )
    chosen = [unsettled[intent_id] for intent_id in dict.fromkeys(ids)] if not every else list(unsettled.values())
    if not chosen:
        print(f"audit log {path}: no write intent without an outcome; nothing to acknowledge")
        return 0
    log = AuditLog(path) if max_bytes is None else AuditLog(path, max_bytes=max_bytes)
    try:
        log.acknowledge([intent.id for intent in chosen])
    except AuditUnavailable as exc:
        raise UsageError(str(exc)) from None
    finally:
        log.close()
    for intent in chosen:
        print(f"acknowledged {intent.id}: {intent.tool} in tenant {intent.tenant or '?'} at {intent.ts}")
    print(f"audit log {path}: {len(chosen)} write intent(s) acknowledged")
    return 0
