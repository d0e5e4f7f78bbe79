"""`mcp-server-connectwise [--config PATH] audit verify [PATH]`: check the audit log's hash chain.

Prints one line per finding (`FILE:LINE: why`, or `FILE: why` for a missing file) and a closing verdict.
Exit 0 if the chain is intact, 1 if not, 2 (via the CLI's UsageError/ConfigError) if there is nothing to check.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mcp_server_connectwise.cli.arguments import UsageError, add_config_option


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("audit", help="check the audit log")
    add_config_option(parser)
    actions = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = actions.add_parser("verify", help="verify the audit log's hash chain; report the first broken line")
    verify.add_argument("path", nargs="?", help="audit log to verify (default: the configured audit path)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mcp_server_connectwise.config import load_config

    if args.audit_command == "verify":
        return _verify(Path(args.path) if args.path else load_config(args.config).audit.path)
    raise AssertionError(f"unhandled audit command {args.audit_command}")


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
    checked = f"{result.lines} line(s) in {len(result.files)} file(s)"
    if result.intact:
        print(f"audit log {path}: intact, {checked}")
        return 0
    print(f"audit log {path}: NOT intact, {len(result.findings)} finding(s) after checking {checked}")
    return 1
