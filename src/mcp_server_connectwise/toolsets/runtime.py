"""The one place a tool call is run: caller, tenant, refusals, audit, errors, and the words of the answer.

`bind` turns a `ToolDefinition` into the function the SDK registers: the tool's arguments plus `tenant`,
returning a `CallToolResult` with the result (and its rendered `next_steps`) as structured content and an
`_meta` integrity label.

Before a tool sends anything, `ToolRuntime.run` refuses, in this order: an argument the tool does not have
(the SDK would drop it silently), a tenant outside the caller's list (HTTP/SSE principals), an unknown tenant,
a tool outside the tenant's `tools` allowlist, a write to a read-only tenant, and any write while the audit
log cannot be written.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from contextlib import nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, get_args, get_origin

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools.base import Tool
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field, GetPydanticSchema
from pydantic import ValidationError as PydanticValidationError

from mcp_server_connectwise.audit import AuditEntry, AuditLog, AuditUnavailable, audit_arguments, unsettled_intents
from mcp_server_connectwise.config import ConfigError, TenantConfig, did_you_mean
from mcp_server_connectwise.config.models import DEFAULT_CALL_DEADLINE_SECONDS
from mcp_server_connectwise.connectwise import ConnectWiseError, RequestRecord
from mcp_server_connectwise.connectwise.scope import call_scope
from mcp_server_connectwise.http_auth import (
    TenantNotAllowed,
    check_tenant_allowed,
    principal_member,
    principal_tenants,
)
from mcp_server_connectwise.services import clock, progress
from mcp_server_connectwise.services.errors import Failed, Look, Refused, ServiceError, explain, sentence, shown
from mcp_server_connectwise.services.tenancy import Tenants, announcing_writes, collect_requests
from mcp_server_connectwise.services.write_recovery import EarlierAttempt, repeating
from mcp_server_connectwise.toolsets.arguments import ARGUMENT_ERROR, SentencedArguments, argument_refusal
from mcp_server_connectwise.toolsets.definition import Offer, Registry, ToolCall, ToolDefinition, with_next_steps
from mcp_server_connectwise.toolsets.schemas import compact
from mcp_server_connectwise.untrusted import one_line

logger = logging.getLogger(__name__)

# Set around each tools/call by `AuditRejectedCalls`; `ToolRuntime` appends to it when it writes the call's line.
_audited_marker: ContextVar[list[bool] | None] = ContextVar("audited_marker", default=None)

# What a tenant is, and that it is optional, the server instructions say once (`Offer.instructions`).
TenantArgument = Annotated[str | None, Field(description="Omit for the default tenant.")]
TENANT_PARAMETER = inspect.Parameter("tenant", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=TenantArgument)
# Where the SDK hands the bound function the request (for the arguments as sent); left out of the input schema.
CONTEXT_PARAMETER = inspect.Parameter("sdk_context", inspect.Parameter.KEYWORD_ONLY, annotation=Context)
# A repeat whose earlier call's record was found says so in its next steps.
ALREADY_SAVED = "An earlier identical call had already saved this (its answer was lost); nothing new was written."
# Unsettled write calls remembered, at most (the oldest is forgotten first).
_MAX_UNSETTLED = 1024
# Past its deadline a call is stopped after this much more, in case something did not keep to the deadline.
_BACKSTOP_SECONDS = 1.0
# Unknown argument names quoted in a refusal, at most: the rest are counted.
MAX_NAMED_UNKNOWN = 5

# Labels the host can act on (after github-mcp-server's IFC labels): ticket text is written by outsiders.
UNTRUSTED_RESULT_META = {"ifc": {"integrity": "untrusted", "confidentiality": "private"}}
TRUSTED_RESULT_META = {"ifc": {"integrity": "trusted", "confidentiality": "private"}}


def select_tools(
    registry: Registry, tenants: Tenants, *, toolsets: Collection[str] | None = None
) -> list[ToolDefinition]:
    """The tools to serve: those of `toolsets` (all when None) that some served tenant can run - in its
    allowlist, and a read unless the tenant (or the server: `--read-only` wins over any other selection) is
    read-only. tools/list is the same for every caller; a tool listed for one tenant is refused by name for
    another. An unknown toolset name is a `ConfigError`."""
    if toolsets is not None:
        for name in toolsets:
            if name not in registry.toolset_names:
                raise ConfigError(
                    f"{name!r} is not a toolset{did_you_mean(name, registry.toolset_names)}; "
                    f"the toolsets are: {', '.join(registry.toolset_names)}"
                )
    return [
        definition
        for definition in registry.tools
        if (toolsets is None or registry.toolset_of[definition.name] in toolsets)
        and any(tenant_runs(tenants, tenant, definition) for tenant in tenants.config.tenants.values())
    ]


def tenant_runs(tenants: Tenants, tenant: TenantConfig, definition: ToolDefinition) -> bool:
    return tenants.allows(tenant, definition.name) and (definition.read_only or not tenants.is_read_only(tenant))


def check_tool_allowlists(tenants: Iterable[TenantConfig], known: Collection[str], *, where: str = "") -> None:
    """A `ConfigError` at start-up for a tool name in some tenant's `tools` that is no tool of this server."""
    for tenant in tenants:
        for name in tenant.tools or ():
            if name not in known:
                raise ConfigError(
                    f"{where}tenant '{tenant.name}': key 'tools': {name!r} is not a tool{did_you_mean(name, known)}; "
                    f"the tools are: {', '.join(sorted(known))}"
                )


@dataclass(frozen=True)
class Caller:
    """Who makes a call: a principal (named in the audit), the tenants it may use (None: every tenant) and the
    ConnectWise member its writes act as (None: the tenant's API member)."""

    principal: str
    tenants: frozenset[str] | None
    member: str | None = None


def to_result(model: BaseModel, *, untrusted: bool) -> CallToolResult:
    payload = model.model_dump(mode="json", exclude_none=True)
    # Compact JSON: every byte here is read by the model.
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=payload,
        meta=UNTRUSTED_RESULT_META if untrusted else TRUSTED_RESULT_META,
    )


class ToolRuntime:
    """Runs tool calls for a set of tenants and writes each one to the audit log before answering.

    `principal` is the fixed caller of stdio and in-memory sessions (the user who started the server), who
    may use every tenant. None means every call must come with a verified bearer token (HTTP/SSE), whose
    principal is the caller, limited to its tenants.
    """

    def __init__(
        self,
        tenants: Tenants,
        audit: AuditLog,
        principal: str | None,
        offer: Offer,
        *,
        deadline: float = DEFAULT_CALL_DEADLINE_SECONDS,
    ) -> None:
        self.tenants = tenants
        self.audit = audit
        self.metrics = tenants.metrics  # what /metrics counts (nothing on stdio and in memory)
        self.principal = principal
        self.offer = offer  # the tools listed; a call's answer names those its tenant can run
        self.deadline = deadline  # seconds a call may take before it answers
        # Write calls whose outcome was never reported as done, by `_key`: an identical call looks for what
        # that one may have written before it sends anything. Writes a crash interrupted (intents in the audit
        # without an outcome) count too.
        self._unsettled: dict[str, Unsettled] = {}
        for intent in unsettled_intents(audit.path):
            unsettled = self._unsettled.setdefault(
                _key(intent.tool, intent.tenant, intent.args), Unsettled(intent.time)
            )
            unsettled.intents.append(intent.id)

    def _settle(self, key: str, outcome: str, called_at: datetime, call: ToolCall | None) -> None:
        if outcome == "unknown":
            unsettled = self._unsettled.setdefault(key, Unsettled(called_at))
            unsettled.intents = [*dict.fromkeys([*unsettled.intents, *(call.intents if call else ())])]
            while len(self._unsettled) > _MAX_UNSETTLED:
                del self._unsettled[next(iter(self._unsettled))]
        elif outcome == "ok":
            self._unsettled.pop(key, None)

    def _announcer(
        self, call: ToolCall, caller: Caller, definition: ToolDefinition, tenant: str, arguments: dict[str, Any]
    ) -> Callable[[str, str, Any], None]:
        """What writes the audit's intent line, fsynced, before each write the call sends."""

        def announce(method: str, path: str, body: Any) -> None:
            try:
                intent = self.audit.intent(
                    tenant=tenant,
                    principal=caller.principal,
                    tool=definition.name,
                    arguments=arguments,
                    method=method,
                    path=path,
                    body=body,
                    free_text=definition.free_text,
                    member=caller.member,
                )
            except AuditUnavailable as exc:
                raise Failed(f"{exc} The write could not be audited, so it was not sent.") from None
            call.intents.append(intent)

        return announce

    def caller(self) -> Caller:
        access = get_access_token()
        if access is not None:
            return Caller(access.client_id, principal_tenants(access), principal_member(access))
        if self.principal is None:
            # The SDK refuses unauthenticated requests (401) before a tool runs; refuse rather than trust.
            return Caller("unauthenticated", frozenset())
        return Caller(self.principal, None)

    async def run(
        self,
        definition: ToolDefinition,
        arguments: dict[str, Any],
        unknown: Sequence[str] | Callable[[], Sequence[str]] = (),
        *,
        session: object = None,
        report: progress.Reporter | None = None,
    ) -> CallToolResult:
        """Run `definition` with its validated `arguments`; `unknown` names (or, called, finds) the arguments the
        caller sent that the tool does not have, which refuse the call. `session` tells the caller's sessions
        apart, so that the tenant's request budget serves each of them in turn; `report` carries the handler's
        `progress.advance` counts to the caller.

        Every request the call makes shares one deadline (`connectwise.scope`); past it, plus a moment for the
        answer, the call is stopped and answered with what is known."""
        started, called_at = time.perf_counter(), clock.now()
        caller = self.caller()
        invalid: PydanticValidationError | None = arguments.pop(ARGUMENT_ERROR, None)
        tenant_name = arguments.pop("tenant", None)
        if tenant_name is None or not isinstance(tenant_name, str):
            tenant_name = self.tenants.config.default_tenant  # so that a refusal's audit line names it too
        call: ToolCall | None = None
        outcome, error, result = "ok", None, None
        # Only a write can repeat one whose outcome is not known; a read needs no key.
        key = (
            None
            if definition.read_only
            else _key(definition.name, tenant_name, audit_arguments(arguments, definition.free_text))
        )
        repeat = self._unsettled.get(key) if key is not None else None
        earlier: EarlierAttempt | None = None
        with (
            collect_requests() as requests,
            call_scope(self.deadline, caller=(caller.principal, session), member=caller.member),
        ):
            try:
                if callable(unknown):
                    unknown = unknown()
                if unknown:
                    raise Refused(no_such_arguments(definition, unknown))
                if invalid is not None:
                    raise Refused(argument_refusal(invalid))
                tenant = self._permitted_tenant(caller, definition, tenant_name)
                tenant_name = tenant.name
                async with asyncio.timeout(self.deadline + _BACKSTOP_SECONDS):
                    call = ToolCall(await self.tenants.open_session(tenant))
                    with (
                        announcing_writes(self._announcer(call, caller, definition, tenant.name, arguments)),
                        repeating(repeat.started) if repeat is not None else nullcontext() as earlier,
                        progress.reporting(report) if report is not None else nullcontext(),
                    ):
                        result = await _call_handler(definition, call, arguments)
                    if repeat is not None:  # done, having looked for what the earlier call wrote: it is settled
                        call.intents.extend(repeat.intents)
                    if call.partly_unknown:  # answered, but some write of it may or may not have been applied
                        outcome = "unknown"
            except TimeoutError:
                sent = [request for request in requests if request.writes]
                outcome, error = (
                    ("unknown", _ran_out_of_time_writing(definition, tenant_name, self.deadline))
                    if sent
                    else ("error", _ran_out_of_time(tenant_name, self.deadline))
                )
                error += self._offer_for(tenant_name).look(Look.READ_TICKET if sent else None)
            except ServiceError as exc:
                outcome, error = exc.outcome, str(exc) + self._offer_for(tenant_name).look(exc.look)
            except ConnectWiseError as exc:
                write_unsent = not definition.read_only and not any(request.writes for request in requests)
                explained = explain(exc, tenant_name, write_unsent=write_unsent)
                outcome, error = explained.outcome, str(explained) + self._offer_for(tenant_name).look(explained.look)
            except BaseException as exc:
                # A bug (the SDK logs the traceback and tells the model nothing more) or a cancelled call (the
                # client went away): audited all the same. A write tool that sent a write, or was cancelled once
                # it could send one (a request in flight is not yet listed), may have written: outcome unknown.
                cancelled = not isinstance(exc, Exception)
                may_have_written = not definition.read_only and (
                    any(request.writes for request in requests) or (cancelled and call is not None)
                )
                if key is not None:
                    self._settle(key, "unknown" if may_have_written else "error", called_at, call)
                self._audit(
                    caller,
                    definition,
                    tenant_name,
                    arguments,
                    "unknown" if may_have_written else "error",
                    "cancelled" if cancelled else "internal error",
                    started,
                    requests,
                    call,
                )
                raise
        if key is not None:
            self._settle(key, outcome, called_at, call)
        self._audit(caller, definition, tenant_name, arguments, outcome, error, started, requests, call)
        if error is not None:
            # Sentences quote names customers wrote (a contact, a device): nothing hidden in them reaches the model.
            raise ToolError(one_line(error))
        assert result is not None  # no error: the handler returned its result
        next_steps = self._offer_for(tenant_name).next_steps(definition, result)
        if earlier is not None and earlier.found is not None:
            next_steps = f"{ALREADY_SAVED} {next_steps}"
        answer = with_next_steps(type(result)).model_construct(**dict(result), next_steps=next_steps)
        return to_result(answer, untrusted=definition.untrusted_output)

    def _offer_for(self, tenant_name: str | None) -> Offer:
        """The tools a refusal may point at: those listed that the call's tenant (if it is known) can run."""
        tenant = self.tenants.config.tenants.get(tenant_name) if tenant_name else None
        if tenant is None:
            return self.offer
        return self.offer.narrowed(lambda tool: tenant_runs(self.tenants, tenant, tool))

    def _permitted_tenant(self, caller: Caller, definition: ToolDefinition, name: str | None) -> TenantConfig:
        """The tenant the call works in, once everything that could forbid the call has been checked."""
        if caller.tenants is not None:
            if name is None:
                raise Refused(f"Name the tenant to work in: one of {', '.join(sorted(caller.tenants)) or 'none'}.")
            try:
                check_tenant_allowed(caller.principal, caller.tenants, name)
            except TenantNotAllowed as exc:
                raise Refused(f"{sentence(str(exc))}; nothing was sent.") from None
        tenant = self.tenants.resolve(name)
        if not self.tenants.allows(tenant, definition.name):
            raise Refused(
                f"Tenant {tenant.name} does not allow {definition.name}; its tools are {', '.join(tenant.tools or ())}. "
                "Nothing was sent."
            )
        if not definition.read_only:
            if self.tenants.is_read_only(tenant):
                raise Refused(
                    f"Tenant {tenant.name} is read-only, so {definition.name} is not allowed there; nothing was sent."
                )
            try:
                self.audit.check_writable()
            except AuditUnavailable as exc:
                raise Refused(
                    f"{exc} Writes are disabled until it can be, so {definition.name} sent nothing; reads still work."
                ) from None
        return tenant

    def _audit(
        self,
        caller: Caller,
        definition: ToolDefinition,
        tenant: str | None,
        arguments: dict[str, Any],
        outcome: str,
        error: str | None,
        started: float,
        requests: list,
        call: ToolCall | None,
    ) -> None:
        seconds = time.perf_counter() - started
        entry = AuditEntry(
            tenant=tenant,
            principal=caller.principal,
            tool=definition.name,
            args=audit_arguments(arguments, definition.free_text),
            outcome=outcome,  # type: ignore[arg-type]
            error=error,
            duration_ms=seconds * 1000,
            requests=[_audited_request(r) for r in requests],
            written=call.written if call else [],
            intents=call.intents if call else [],
            member=None if definition.read_only else caller.member,  # reads go as the API member
        )
        self.metrics.tool_call(definition.name, outcome, seconds)
        # Writes are fsynced: the trail of what changed in ConnectWise must survive a crash.
        self._write_line(entry, durable=not definition.read_only)
        marker = _audited_marker.get()
        if marker is not None:
            marker.append(True)

    def audit_rejected(self, name: str, arguments: dict[str, Any], started: float) -> None:
        """The line for a call the SDK answered without running the tool (unknown tool, arguments not
        matching the input schema). Its error text can quote the arguments, so the line keeps only a summary."""
        definition = self.offer.tools.get(name)
        # Unknown tool: every text argument might be free text.
        free_text = (
            definition.free_text if definition else {key for key, value in arguments.items() if isinstance(value, str)}
        )
        seconds = time.perf_counter() - started
        entry = AuditEntry(
            tenant=arguments.get("tenant") if isinstance(arguments.get("tenant"), str) else None,
            principal=self.caller().principal,
            tool=name,
            args=audit_arguments(arguments, free_text),
            outcome="refused",
            error="arguments do not match the tool's input schema" if definition else "no such tool",
            duration_ms=seconds * 1000,
        )
        self._write_line(entry, durable=False)
        # A name that is no tool is the caller's text: it is counted, never used as a label.
        self.metrics.tool_call(name if definition else "unknown", "refused", seconds)

    def _write_line(self, entry: AuditEntry, *, durable: bool) -> None:
        try:
            self.audit.write(entry, durable=durable)
        except AuditUnavailable as exc:
            # The call has run (a write may be in ConnectWise): failing it now would invite a duplicate.
            # `check_writable` refuses the next write instead; the operator learns of the gap here.
            # %r: the tool and tenant names may be the caller's text, and must not break the log's lines.
            logger.error(
                "audit line for %r in tenant %r by %s not written: %s", entry.tool, entry.tenant, entry.principal, exc
            )


def _audited_request(record: RequestRecord) -> dict[str, Any]:
    line: dict[str, Any] = {
        "method": record.method,
        "path": record.path,
        "status": record.status,
        "ms": round(record.elapsed_ms, 1),
    }
    if record.budget_wait_ms:
        line["budget_wait_ms"] = round(record.budget_wait_ms, 1)
    return line


class AuditRejectedCalls:
    """SDK middleware: audit tools/call requests that never reached `ToolRuntime.run`, so that every call,
    including one the SDK rejects for its arguments, leaves one line."""

    def __init__(self, runtime: ToolRuntime) -> None:
        self.runtime = runtime

    async def __call__(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        if ctx.method != "tools/call" or not isinstance(ctx.params, dict):
            return await call_next(ctx)
        started = time.perf_counter()
        marker: list[bool] = []
        token = _audited_marker.set(marker)
        try:
            result = await call_next(ctx)
        finally:
            _audited_marker.reset(token)
        if not marker and isinstance(result, dict) and result.get("isError"):
            arguments = ctx.params.get("arguments")
            self.runtime.audit_rejected(
                str(ctx.params.get("name")), arguments if isinstance(arguments, dict) else {}, started
            )
        return result


def no_such_arguments(definition: ToolDefinition, unknown: Sequence[str]) -> str:
    """The refusal of arguments `definition` does not have, each with the closest real name if there is one."""
    accepted = [parameter.name for parameter in [*definition.arguments, TENANT_PARAMETER]]
    named = []
    for name in unknown[:MAX_NAMED_UNKNOWN]:
        named.append(shown(name) + did_you_mean(name, accepted, quoted=False))
    if len(unknown) > MAX_NAMED_UNKNOWN:
        named.append(f"{len(unknown) - MAX_NAMED_UNKNOWN} more")
    return (
        f"{definition.name} has no argument{'s' if len(unknown) > 1 else ''} {', '.join(named)}, so nothing "
        f"was sent; its arguments are {', '.join(accepted)}."
    )


# The SDK JSON-decodes a string argument before validation (so that clients may send lists as JSON text) unless
# its annotation is exactly `str`: notes that read like a JSON array would be refused, and the text "null" dropped.
# So an argument that is text or nothing is annotated `str` for the SDK, and validated and described as `str | None`.
_TEXT_OR_NOTHING = GetPydanticSchema(lambda _source, handler: handler(str | None))


def _taken_as_sent(annotation: Any) -> Any:
    """`annotation` as the SDK should see it: an argument typed `str | None` keeps the caller's text."""
    base, *metadata = get_args(annotation) if get_origin(annotation) is Annotated else (annotation,)
    if base != str | None:
        return annotation
    return Annotated[(str, _TEXT_OR_NOTHING, *metadata)]


@dataclass
class Unsettled:
    """A write call whose outcome was never reported as done: when it was first made, and its intent lines."""

    started: datetime
    intents: list[str] = field(default_factory=list)


def _key(tool: str, tenant: str | None, audited_arguments: dict[str, Any]) -> str:
    """What makes two write calls the same call: the tool, the tenant and every argument, as the audit records
    them (free text as length and hash), so that a call after a restart matches an intent line too."""
    canonical = json.dumps([tool, tenant, audited_arguments], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _ran_out_of_time(tenant: str | None, deadline: float) -> str:
    return (
        f"The call did not finish within its {deadline:g} s (tenant {tenant}); ConnectWise is slow to answer: "
        "try again in a minute. Nothing was changed."
    )


def _ran_out_of_time_writing(definition: ToolDefinition, tenant: str | None, deadline: float) -> str:
    return (
        f"{definition.name} did not finish within its {deadline:g} s (tenant {tenant}) after sending its write, so "
        "the change may have been saved: check before retrying (a retry of this same call looks for it first)."
    )


async def _call_handler(definition: ToolDefinition, call: ToolCall, arguments: dict[str, Any]) -> BaseModel:
    model = definition.request_model
    if model is None:
        return await definition.handler(call, **arguments)
    try:
        request = model.model_validate(arguments)
    except PydanticValidationError as exc:  # a rule across arguments; each one alone passed the SDK's checks
        raise Refused(argument_refusal(exc)) from None
    return await definition.handler(call, request)


def _session_of(sdk_context: Context) -> object:
    """What tells the caller's MCP sessions apart, where the protocol keeps sessions: the transport's session id
    (streamable HTTP), else the connection's handshake (one per client connection). From 2026-07-28 on there
    are no sessions, and the principal alone says who is asking."""
    try:
        context = sdk_context.request_context
    except Exception:  # no request context (a direct call): one caller
        return None
    headers = sdk_context.headers or {}
    if session_id := headers.get("mcp-session-id"):
        return session_id
    handshake = context.session.client_params  # the connection's, the same object for all its requests
    return id(handshake) if handshake is not None else None


def sdk_tool(definition: ToolDefinition, runtime: ToolRuntime) -> Tool:
    """The SDK's registration of `definition`, with arguments that do not fit refused as one sentence."""
    tool = Tool.from_function(
        bind(definition, runtime), name=definition.name, title=definition.title, annotations=definition.annotations
    )
    tool.fn_metadata = SentencedArguments.replacing(tool.fn_metadata)
    tool.parameters = compact(tool.parameters)
    tool.fn_metadata.output_schema = compact(tool.fn_metadata.output_schema, output=True)
    return tool


def bind(definition: ToolDefinition, runtime: ToolRuntime) -> Callable[..., Awaitable[CallToolResult]]:
    """The function the SDK registers for `definition`: its arguments plus `tenant`, and the SDK's request
    context, through which the arguments as sent are checked for names the tool lacks (the SDK's argument
    model ignores them).

    The SDK derives the input schema from the signature and the output schema from the return annotation,
    `Annotated[CallToolResult, Model]`: a CallToolResult (for `_meta`) validated against the result model
    with its `next_steps`.
    """
    parameters = [
        parameter.replace(annotation=_taken_as_sent(parameter.annotation))
        for parameter in [*definition.arguments, TENANT_PARAMETER]
    ]
    accepted = {parameter.name for parameter in parameters}
    parameters.append(CONTEXT_PARAMETER)
    returns = Annotated[CallToolResult, with_next_steps(definition.result_model)]

    async def tool(sdk_context: Context, **arguments: Any) -> CallToolResult:
        def sent() -> dict[str, Any]:
            return (sdk_context.request_context.params or {}).get("arguments") or {}

        def unknown() -> list[str]:  # inside `run`, so that a failure here is audited like any other
            return [name for name in sent() if name not in accepted]

        async def report(done: float, total: float | None, message: str | None) -> None:
            await sdk_context.report_progress(done, total, message)  # a no-op unless the request has a token

        if ARGUMENT_ERROR in arguments:  # audited with the arguments as sent: there are no validated ones
            arguments = {**sent(), ARGUMENT_ERROR: arguments[ARGUMENT_ERROR]}
        return await runtime.run(
            definition, arguments, unknown=unknown, session=_session_of(sdk_context), report=report
        )

    tool.__name__ = tool.__qualname__ = definition.name
    tool.__doc__ = runtime.offer.description(definition)
    tool.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]  # read by inspect.signature
    tool.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": returns}
    return tool
