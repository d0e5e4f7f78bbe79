"""Toolset `configurations`: a company's devices (ConnectWise configurations), found, read, and kept in line with
what an RMM reports."""

from __future__ import annotations

from mcp_server_connectwise.services import configuration_sync, configurations
from mcp_server_connectwise.services.configuration_sync import (
    ConfigurationUpsert,
    ConfigurationUpserted,
    DeviceSync,
    SyncResult,
)
from mcp_server_connectwise.services.configurations import (
    ConfigurationDetails,
    ConfigurationLookup,
    ConfigurationQuery,
    ConfigurationSearchResult,
)
from mcp_server_connectwise.services.errors import Look
from mcp_server_connectwise.toolsets.definition import Hint, ToolCall, ToolDefinition, Toolset


async def search_configurations(call: ToolCall, query: ConfigurationQuery) -> ConfigurationSearchResult:
    """Find configurations (devices) by company, part of a name, serial number, type, status, IP or MAC address;
    filters combine with AND. Types and statuses are names, checked against the tenant's lists."""
    return await configurations.search_configurations(call.session, query)


def _search_hint(result: ConfigurationSearchResult) -> Hint:
    if result.has_more:
        return Hint(f"More configurations match: call again with page={result.next_page}, or narrow the search.")
    if not result.configurations:
        return Hint("No configuration matches; loosen the filters (active_only=false includes inactive ones).", False)
    return Hint()


async def get_configuration(call: ToolCall, lookup: ConfigurationLookup) -> ConfigurationDetails:
    """Read one configuration (device) in full, by id, or by name or serial number (company narrows them), with
    the open tickets it is attached to among its company's newest open tickets."""
    return await configurations.get_configuration(call.session, lookup)


def _details_hint(result: ConfigurationDetails) -> Hint:
    if result.more_open_tickets:
        return Hint(f"Only the company's {result.open_tickets_checked} newest open tickets were looked at.")
    return Hint()


async def upsert_configuration(call: ToolCall, device: ConfigurationUpsert) -> ConfigurationUpserted:
    """Create or update a company's device from RMM data, matched by serial number, else by name (any case):
    only fields that differ are written; fields left out stay as they are; several matches are refused. A retry
    never makes a second record."""
    upserted = await configuration_sync.upsert_configuration(call.session, device)
    if upserted.outcome != "unchanged":
        call.wrote("configuration", upserted.configuration_id, outcome=upserted.outcome)
    return upserted


def _upsert_hint(result: ConfigurationUpserted) -> Hint:
    if result.outcome == "unchanged":
        return Hint("The configuration already held these values; nothing was sent.")
    return Hint()


async def sync_configurations(call: ToolCall, sync: DeviceSync) -> SyncResult:
    """Create or update up to 200 devices of one company from RMM data after one listing of its configurations:
    each matched by serial number, else by name (any case), only fields that differ written. One outcome per
    device; at the call's deadline it stops: send to_repeat's devices again."""
    synced = await configuration_sync.sync_configurations(call.session, sync)
    for done in synced.devices:
        if done.configuration_id is not None and done.outcome in ("created", "updated"):
            call.wrote("configuration", done.configuration_id, outcome=done.outcome)
    call.partly_unknown = any(done.outcome == "unknown" for done in synced.devices)
    return synced


def _sync_hint(result: SyncResult) -> Hint:
    if result.to_repeat:
        return Hint(f"{len(result.to_repeat)} devices are not done: call again with only those (to_repeat).")
    if result.counts.get("refused"):
        return Hint("Refused devices were not written; each reason says what to correct.")
    return Hint()


TOOLSET = Toolset(
    "configurations",
    "find, read and sync devices (configurations)",
    reads=(
        ToolDefinition(
            search_configurations,
            title="Search configurations (devices)",
            read_only=True,
            idempotent=True,
            purpose="find devices",
            provides=Look.FIND_CONFIGURATION,
            hint=_search_hint,
            examples=({"company": "ACME", "type": "Managed Workstation"},),
            next_tools=("get_configuration",),
        ),
        ToolDefinition(
            get_configuration,
            title="Read a configuration (device)",
            read_only=True,
            idempotent=True,
            purpose="read a device and its open tickets",
            hint=_details_hint,
            examples=({"configuration": "ACME-FW01"},),
            next_tools=("get_ticket_details", "upsert_configuration"),
        ),
    ),
    writes=(
        ToolDefinition(
            upsert_configuration,
            title="Create or update a device",
            read_only=False,
            destructive=True,
            idempotent=True,
            purpose="create or update a device",
            hint=_upsert_hint,
            examples=(
                {
                    "company": "ACME",
                    "name": "ACME-WS-031",
                    "type": "Managed Workstation",
                    "serial_number": "5CG2031XQZ",
                    "ip_address": "10.2.0.31",
                },
            ),
            next_tools=("get_configuration",),
            free_text=frozenset({"notes"}),
        ),
        ToolDefinition(
            sync_configurations,
            title="Sync a company's devices",
            read_only=False,
            destructive=True,
            idempotent=True,
            purpose="sync a company's devices",
            hint=_sync_hint,
            examples=(
                {
                    "company": "ACME",
                    "devices": [{"name": "ACME-WS-014", "type": "Managed Workstation", "ip_address": "10.2.0.114"}],
                },
            ),
            next_tools=("search_configurations",),
            free_text=frozenset({"devices", "notes"}),
        ),
    ),
)
