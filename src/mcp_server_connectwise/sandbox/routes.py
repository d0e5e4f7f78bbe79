"""The ConnectWise endpoints: one table-driven set of list/count/item routes plus the few special ones."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mcp_server_connectwise.sandbox.callbacks import KEY_PATH
from mcp_server_connectwise.sandbox.errors import (
    ApiError,
    bad_request,
    field_error,
    invalid_object,
    method_not_supported,
    not_found,
    security_denied,
)
from mcp_server_connectwise.sandbox.gate import json_bytes
from mcp_server_connectwise.sandbox.paging import forward_only, navigable
from mcp_server_connectwise.sandbox.query import Query, custom_field_predicate, matching
from mcp_server_connectwise.sandbox.settings import API_MEMBER_IDENTIFIER, API_ROOT, CODEBASE
from mcp_server_connectwise.sandbox.store import CONFIGURATION_REFERENCE_FIELDS, Record, Store, Token, iso
from mcp_server_connectwise.sandbox.tables import TABLES
from mcp_server_connectwise.sandbox.writes import Writer

Endpoint = Callable[[Request], Awaitable[Response]]
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
VERSION = "v2025.1.10431"


@dataclass(frozen=True)
class Resource:
    """A table the API serves: list and count routes at `path`, item routes under it."""

    path: str  # under the API root; a child resource's has a {parent:int} segment
    table: str
    writable: bool  # POST on the collection, PUT and PATCH on an item
    deletable: bool


RESOURCES = tuple(
    Resource("/" + t.collection("{parent:int}"), t.name, t.writable, t.deletable) for t in TABLES.values() if t.path
)
_QUERIES: dict[str, Query] = {}


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json_bytes(body), status, headers, media_type="application/json; charset=utf-8")


def _query(model: str) -> Query:
    query = _QUERIES.get(model)
    if query is None:
        query = _QUERIES[model] = Query(model)
    return query


def _store(request: Request) -> Store:
    return request.app.state.store


def _actor(request: Request) -> str:
    return request.scope["sandbox.actor"]


def _body(request: Request) -> Any:
    return request.scope.get("sandbox.json")


# --- list, count, item --------------------------------------------------------------------------------


def _records(store: Store, resource: Resource, parent: int | None) -> Iterable[Record]:
    if parent is None:
        return store[resource.table].values()
    _check_parent(store, resource, parent)
    return store.children(resource.table, parent)


def _check_parent(store: Store, resource: Resource, parent_id: int) -> None:
    """A 404 unless the parent in a child resource's path exists."""
    parent = TABLES[resource.table].parent
    assert parent is not None
    store.get(parent.table, parent_id)


def _filtered(query: Query, records: Iterable[Record], params: Mapping[str, str]) -> list[Record]:
    return matching(
        records,
        query.predicate(params.get("conditions")),
        query.predicate(params.get("childConditions")),
        custom_field_predicate(params.get("customFieldConditions")),
    )


def _list_response(request: Request, query: Query, records: Iterable[Record], params: Mapping[str, str]) -> Response:
    """Filter, order, page and project `records` as a ConnectWise list GET does."""
    project = query.projector(params.get("fields"))
    matched = _filtered(query, records, params)
    url = str(request.url.replace(query=""))
    raw_query = request.url.query
    link: str | None
    if request.headers.get("pagination-type", "").lower() == "forward-only":
        page, link = forward_only(matched, params, url, raw_query)
    else:
        page, link = navigable(query.sort(matched, params.get("orderBy")), params, url, raw_query)
    body = [project(r) for r in page] if project else page
    return json_response(body, headers={"Link": link} if link is not None else None)


def _collection(resource: Resource) -> Endpoint:
    model = TABLES[resource.table].model

    async def endpoint(request: Request) -> Response:
        parent = request.path_params.get("parent")
        store = _store(request)
        if request.method == "GET":
            return _list_response(request, _query(model), _records(store, resource, parent), request.query_params)
        if request.method == "POST" and resource.writable:
            writer: Writer = request.app.state.writer
            return json_response(writer.create(resource.table, _body(request), _actor(request), parent), 201)
        raise method_not_supported(request.method)

    return endpoint


def _count(resource: Resource) -> Endpoint:
    model = TABLES[resource.table].model

    async def endpoint(request: Request) -> Response:
        if request.method != "GET":
            raise method_not_supported(request.method)
        records = _records(_store(request), resource, request.path_params.get("parent"))
        return json_response({"count": len(_filtered(_query(model), records, request.query_params))})

    return endpoint


def _item(resource: Resource) -> Endpoint:
    model = TABLES[resource.table].model

    async def endpoint(request: Request) -> Response:
        parent = request.path_params.get("parent")
        record_id = request.path_params["id"]
        store, writer = _store(request), request.app.state.writer
        if parent is not None:
            _check_parent(store, resource, parent)
        method = request.method
        if method == "GET":
            record = writer.existing(resource.table, record_id, parent)
            project = _query(model).projector(request.query_params.get("fields"))
            return json_response(project(record) if project else record)
        if method == "PATCH" and resource.writable:
            return json_response(writer.patch(resource.table, record_id, _body(request), _actor(request), parent))
        if method == "PUT" and resource.writable:
            return json_response(writer.replace(resource.table, record_id, _body(request), _actor(request), parent))
        if method == "DELETE" and resource.deletable:
            writer.delete(resource.table, record_id, parent, actor=_actor(request))
            return Response(status_code=204)
        raise method_not_supported(method)

    return endpoint


# --- special endpoints --------------------------------------------------------------------------------


async def ticket_search(request: Request) -> Response:
    """POST /service/tickets/search: the conditions of a GET, in a body, for conditions too long for a URL."""
    if request.method != "POST":
        raise method_not_supported(request.method)
    body = _body(request)
    if body is not None and not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    params = dict(request.query_params)
    # FilterValues keys as generated are lower case ("childconditions"); accept any case.
    names = {
        "conditions": "conditions",
        "orderby": "orderBy",
        "childconditions": "childConditions",
        "customfieldconditions": "customFieldConditions",
    }
    for key, value in (body or {}).items():
        if key.lower() in names and isinstance(value, str):
            params[names[key.lower()]] = value
    return _list_response(request, _query("Ticket"), _store(request)["tickets"].values(), params)


async def all_notes(request: Request) -> Response:
    """GET /service/tickets/{id}/allNotes: the ticket's notes and its time entries' notes, oldest first."""
    if request.method != "GET":
        raise method_not_supported(request.method)
    store = _store(request)
    ticket_id = request.path_params["parent"]
    ticket_ref = store.ref("tickets", store.get("tickets", ticket_id)["id"])
    combined = [_note_as_ticket_note(note, ticket_ref) for note in store.children("notes", ticket_id)]
    combined += [_time_as_ticket_note(entry, ticket_ref) for entry in store.children("timeEntries", ticket_id)]
    forward = request.headers.get("pagination-type", "").lower() == "forward-only"
    combined.sort(key=(lambda n: n["id"]) if forward else (lambda n: n.get("timeStart", "")))
    return _list_response(request, _query("ServiceTicketNote"), combined, request.query_params)


def _note_as_ticket_note(note: Record, ticket_ref: Record) -> Record:
    out = {
        "id": note["id"],
        "noteType": "TicketNote",
        "ticket": ticket_ref,
        "text": note.get("text", ""),
        "isMarkdownFlag": False,
        "detailDescriptionFlag": note.get("detailDescriptionFlag", False),
        "internalAnalysisFlag": note.get("internalAnalysisFlag", False),
        "resolutionFlag": note.get("resolutionFlag", False),
        "timeStart": note.get("dateCreated", ""),
        "bundledFlag": False,
        "mergedFlag": False,
        "issueFlag": note.get("issueFlag", False),
        "originalAuthor": note.get("createdBy", ""),
        "createdByParentFlag": False,
    }
    for key in ("member", "contact", "_info"):
        if key in note:
            out[key] = note[key]
    return out


def _time_as_ticket_note(entry: Record, ticket_ref: Record) -> Record:
    out = {
        "id": entry["id"],
        "noteType": "TimeEntryNote",
        "ticket": ticket_ref,
        "text": entry.get("notes", ""),
        "isMarkdownFlag": False,
        "detailDescriptionFlag": entry.get("addToDetailDescriptionFlag", False),
        "internalAnalysisFlag": entry.get("addToInternalAnalysisFlag", False),
        "resolutionFlag": entry.get("addToResolutionFlag", False),
        "timeStart": entry.get("timeStart", ""),
        "timeEnd": entry.get("timeEnd", ""),
        "bundledFlag": False,
        "mergedFlag": False,
        "issueFlag": False,
        "originalAuthor": entry.get("enteredBy", ""),
        "createdByParentFlag": False,
    }
    for key in ("member", "_info"):
        if key in entry:
            out[key] = entry[key]
    return out


_CONFIGURATION_QUERY = Query("ConfigurationReference", CONFIGURATION_REFERENCE_FIELDS)


async def ticket_configurations(request: Request) -> Response:
    """/service/tickets/{id}/configurations: GET the configurations attached to the ticket (a paged list of
    ConfigurationReference), POST `{"id": N}` or `{"deviceIdentifier": "..."}` to attach one (201)."""
    writer: Writer = request.app.state.writer
    ticket_id = request.path_params["parent"]
    if request.method == "GET":
        return _list_response(
            request, _CONFIGURATION_QUERY, writer.attached_configurations(ticket_id), request.query_params
        )
    if request.method == "POST":
        return json_response(writer.attach_configuration(ticket_id, _body(request)), 201)
    raise method_not_supported(request.method)


async def ticket_configurations_count(request: Request) -> Response:
    if request.method != "GET":
        raise method_not_supported(request.method)
    records = request.app.state.writer.attached_configurations(request.path_params["parent"])
    return json_response({"count": len(_filtered(_CONFIGURATION_QUERY, records, request.query_params))})


async def ticket_configuration(request: Request) -> Response:
    """/service/tickets/{id}/configurations/{configId}: GET one attached configuration, DELETE detaches it
    (204; the configuration itself stays)."""
    writer: Writer = request.app.state.writer
    ticket_id, configuration_id = request.path_params["parent"], request.path_params["id"]
    if request.method == "GET":
        record = writer.attached_configuration(ticket_id, configuration_id)
        project = _CONFIGURATION_QUERY.projector(request.query_params.get("fields"))
        return json_response(project(record) if project else record)
    if request.method == "DELETE":
        writer.detach_configuration(ticket_id, configuration_id)
        return Response(status_code=204)
    raise method_not_supported(request.method)


async def member_tokens(request: Request) -> Response:
    """POST /system/members/{identifier}/tokens: keys that act as that member (impersonation) until their
    `expiration`; requests made with them are that member's (`createdBy`, `enteredBy`, `updatedBy`).

    [I] Not public, chosen here: only the API member's own keys may ask (keys made this way get 403, as a
    security role without the right would); an inactive member gets 400 (it cannot log in); the keys live
    `settings.token_lifetime_seconds`. Expired keys are forgotten as new ones are made."""
    if request.method != "POST":
        raise method_not_supported(request.method)
    if _actor(request) != API_MEMBER_IDENTIFIER:
        raise security_denied()
    store = _store(request)
    identifier = request.path_params["identifier"]
    member = store.find("members", "identifier", identifier)
    if member is None:
        raise not_found("Member", identifier)
    if member.get("inactiveFlag"):
        raise invalid_object(
            "member", [field_error("InvalidField", "The member is inactive.", "member", "inactiveFlag")]
        )
    now = time.time()
    for public_key in [key for key, token in store.tokens.items() if token.expires <= now]:
        del store.tokens[public_key]
    public_key, private_key = secrets.token_hex(8), secrets.token_hex(8)
    expires = now + request.app.state.settings.token_lifetime_seconds
    store.tokens[public_key] = Token(private_key, member["identifier"], expires)
    return json_response({"publicKey": public_key, "privateKey": private_key, "expiration": iso(expires)})


async def system_info(request: Request) -> Response:
    if request.method != "GET":
        raise method_not_supported(request.method)
    return json_response(
        {
            "version": VERSION,
            "isCloud": False,
            "serverTimeZone": "Eastern Standard Time",
            "licenseBits": [{"activeFlag": True, "name": "Service"}, {"activeFlag": True, "name": "TimeExpense"}],
            "cloudRegion": "",
            "maxWorkFlowRecordsAllowed": 1000,
        }
    )


async def company_info(request: Request) -> Response:
    """GET /login/companyinfo/{company}, no auth. [I] An unknown company gets ConnectWise's routing text with
    404: the body is confirmed text, the status is not public."""
    settings = request.app.state.settings
    if request.path_params["company"].casefold() != settings.company.casefold():
        return PlainTextResponse("Cannot route. Codebase/company is invalid", 404)
    return json_response(
        {
            "CompanyName": "Sandbox Managed IT",
            "Codebase": CODEBASE,
            "VersionCode": "v2025.1",
            "VersionNumber": "v4.6.10431",
            "CompanyID": settings.company,
            "IsCloud": False,
            "SiteUrl": request.url.netloc,
        }
    )


async def callback_key(request: Request) -> Response:
    """GET key_url of a callback: `{"signing_key": ...}`, no auth (a receiver has only the URL). [I] An unknown
    company or key id is ConnectWise's 404 body."""
    if request.method != "GET":
        raise method_not_supported(request.method)
    sender = request.app.state.callbacks
    answer = sender.key_answer(request.query_params.get("companyName"), request.query_params.get("id"))
    if answer is None:
        raise not_found("Callback key", request.query_params.get("id", ""))
    return json_response(answer)


async def endpoint_missing(request: Request) -> Response:
    return json_response({"code": "ConnectWiseApi", "message": "The endpoint does not exist."}, 404)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_response(exc.body, exc.status, exc.headers)


def routes() -> list[Route]:
    table: list[Route] = [
        Route("/login/companyinfo/{company}", company_info, methods=["GET"]),
        Route(KEY_PATH, callback_key, methods=_ALL_METHODS),
        Route(API_ROOT + "/system/info", system_info, methods=_ALL_METHODS),
        Route(API_ROOT + "/service/tickets/search", ticket_search, methods=_ALL_METHODS),
        Route(API_ROOT + "/service/tickets/{parent:int}/allNotes", all_notes, methods=_ALL_METHODS),
        Route(API_ROOT + "/system/members/{identifier}/tokens", member_tokens, methods=_ALL_METHODS),
        Route(API_ROOT + "/service/tickets/{parent:int}/configurations", ticket_configurations, methods=_ALL_METHODS),
        Route(
            API_ROOT + "/service/tickets/{parent:int}/configurations/count",
            ticket_configurations_count,
            methods=_ALL_METHODS,
        ),
        Route(
            API_ROOT + "/service/tickets/{parent:int}/configurations/{id:int}",
            ticket_configuration,
            methods=_ALL_METHODS,
        ),
    ]
    for resource in RESOURCES:
        base = API_ROOT + resource.path
        table.append(Route(base, _collection(resource), methods=_ALL_METHODS))
        table.append(Route(base + "/count", _count(resource), methods=_ALL_METHODS))
        table.append(Route(base + "/{id:int}", _item(resource), methods=_ALL_METHODS))
    table.append(Route("/{path:path}", endpoint_missing, methods=_ALL_METHODS))
    return table
