"""POST, PATCH, PUT and DELETE with ConnectWise's semantics and its 400 `InvalidObject` validation.

- Unknown body fields are ignored and nulls mean "absent", as ConnectWise's deserializer does.
- References resolve by id or natural key (`{"name": ...}`; companies also `{"identifier": ...}`) and are
  stored as the full reference object. Ticket statuses, types, subtypes and items resolve on the ticket's board.
- PATCH is a JSON Patch array of top-level replace/add/remove. A nested path such as `company/identifier`
  changes nothing yet answers 200: ConnectWise's silent false success, reproduced on purpose.
- PUT replaces the record: fields it does not send are gone, or back to their defaults (a table's `defaults`).
- Any write may leave out optional fields: they take ConnectWise's defaults, never crash a rule. A field a
  PATCH removes (or sets to null) goes back to its default; removing a required one is a 400.
- [I] A PATCH `value` that is missing is read as null (.NET's deserializer cannot tell the two apart).
- [I] Child records keep the parent in their URL: `board` of a status/type/subtype/item and `ticketId` of a
  note are ignored in PATCH and PUT.
- The declarative rules (required, unique, enums, defaults...) are the tables' own (tables.py); `_RULES`
  holds the ones that are code.
- Every write is told to `on_change` (the callbacks, `callbacks.py`), with `skipCallback` of a ticket write.
  [I] A PATCH of a request option (`skipCallback`, `processNotifications`) applies to that request and is not
  stored, as a POST or PUT body's is not.

[I] The wording of the validation messages below is not public; codes, resources and fields follow the
documented shapes (API.md, examples/error_bodies.json).
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from mcp_server_connectwise.connectwise.models import EDITABLE_TIME_ENTRY_STATUSES
from mcp_server_connectwise.sandbox.errors import ApiError, bad_request, field_error, invalid_object, not_found
from mcp_server_connectwise.sandbox.store import MODEL_FIELDS, Record, Store, iso, now_iso, parse_iso
from mcp_server_connectwise.sandbox.tables import TABLES, TICKET_CHARGE_TYPES, Parent, Table

Errors = list[dict[str, str]]


def _board_child(table: Table) -> bool:
    return table.parent is not None and table.parent.table == "boards"


# A ticket's status, type, subType and item: references to the children of its board.
_ON_BOARD = {field: target for field, target in TABLES["tickets"].references.items() if _board_child(TABLES[target])}
_NOTE_FLAGS = ("detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag")
_TICKET_CALLBACK_LEVELS = ("owner", "board", "project", "phase", "status", "ticket", "integratortag")
_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "datestring": lambda v: isinstance(v, str),
    "datetime": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "reference": lambda v: isinstance(v, dict),
}


Changed = Callable[..., None]  # (table, action, record, actor, *, skip): a write was made


class Writer:
    """Applies writes to a store on behalf of `actor` (a member identifier, e.g. "api-bot"), telling
    `on_change` of each."""

    def __init__(self, store: Store, on_change: Changed | None = None) -> None:
        self.store = store
        self.on_change = on_change

    def _changed(self, name: str, action: str, record: Record, actor: str, *, skip: bool = False) -> None:
        if self.on_change is not None:
            self.on_change(name, action, record, actor, skip=skip)

    # --- entry points ----------------------------------------------------------------------------------

    def create(
        self, name: str, body: Any, actor: str, parent_id: int | None = None, *, calls_back: bool = True
    ) -> Record:
        self.store.load_all()
        table = TABLES[name]
        record = self._clean(table, body)
        errors: Errors = []
        self._require(table, record, errors)
        self._set_parent(table, record, parent_id)
        self._resolve(table, record, set(record), errors)
        self._rules(table, record, None, set(record), actor, errors)
        if errors:
            raise invalid_object(table.resource, errors)
        now = now_iso()
        record = {"id": self.store.next_id(name), **record}
        record["_info"] = self._info(table, record, actor, now, None)
        self.store.put(name, record)
        self._after(table, None, record, actor, now)
        self._changed(name, "added", record, actor, skip=not calls_back or _skips_callback(body))
        if name == "tickets":
            self._initial_notes(record, body, actor)
        return record

    def patch(self, name: str, record_id: int, operations: Any, actor: str, parent_id: int | None = None) -> Record:
        self.store.load_all()
        table = TABLES[name]
        old = self.existing(name, record_id, parent_id)
        if not isinstance(operations, list) or not operations:
            raise bad_request("The patch document must be a non-empty JSON array of operations.")
        fields = MODEL_FIELDS[table.model]
        record = dict(old)
        changed: set[str] = set()
        errors: Errors = []
        ignored = {"id", "_info", *table.computed, *table.ignored_in_body}
        parent = _url_parent(table)
        if parent is not None:
            ignored.add(parent.field)
        for operation in operations:
            if not isinstance(operation, dict) or not isinstance(operation.get("path"), str):
                raise bad_request("Each patch operation needs an 'op' and a 'path'.")
            op = operation.get("op")
            op = op.lower() if isinstance(op, str) else op
            if op not in ("replace", "add", "remove"):
                raise bad_request(f"Unsupported patch operation {operation.get('op')!r}; use replace, add or remove.")
            # ConnectWise documents bare names (`status`); RFC 6902 clients send pointers (`/status`): both work.
            path = operation["path"].removeprefix("/")
            if "/" in path:
                continue  # ConnectWise answers 200 and changes nothing: the silent false success
            if path not in fields:
                errors.append(
                    field_error("InvalidField", f"{path} is not a field of {table.resource}.", table.resource, path)
                )
                continue
            if path in ignored:
                continue
            value = operation.get("value") if op != "remove" else None
            if value is None:
                record.pop(path, None)
            else:
                record[path] = value
            changed.add(path)
        self._require(table, record, errors, only=changed)
        self._require_on_update(table, record, changed, errors)
        if errors:
            raise invalid_object(table.resource, errors)
        skip = any(
            isinstance(op, dict) and op.get("path", "").removeprefix("/") == "skipCallback" and op.get("value") is True
            for op in operations
        )
        return self._save(table, record, old, changed, actor, skip=skip)

    def replace(self, name: str, record_id: int, body: Any, actor: str, parent_id: int | None = None) -> Record:
        self.store.load_all()
        table = TABLES[name]
        old = self.existing(name, record_id, parent_id)
        record = self._clean(table, body)
        errors: Errors = []
        self._require(table, record, errors)
        self._require_on_update(table, record, set(record), errors)
        if errors:
            raise invalid_object(table.resource, errors)
        parent = _url_parent(table)
        if parent is not None:
            self._set_parent(table, record, parent.id_of(old))
        return self._save(
            table, {"id": record_id, **record}, old, set(record) | set(old), actor, skip=_skips_callback(body)
        )

    def delete(self, name: str, record_id: int, parent_id: int | None = None, *, actor: str = "") -> None:
        self.store.load_all()
        record = self.existing(name, record_id, parent_id)
        self.store.delete(name, record_id)
        self._changed(name, "deleted", record, actor)
        for child in TABLES.values():
            if child.parent is not None and child.parent.table == name and child.parent.deleted_with_parent:
                for row in self.store.children(child.name, record_id):
                    self.store.delete(child.name, row["id"])
        if name == "tickets":
            self.store.ticket_configurations.pop(record_id, None)
        elif name == "timeEntries":
            self._recount_hours(record, None)
        elif name == "configurations":
            # [I] A deleted configuration leaves the tickets it was attached to.
            for ticket_id, attached in list(self.store.ticket_configurations.items()):
                if record_id in attached:
                    attached.remove(record_id)
                    if not attached:
                        del self.store.ticket_configurations[ticket_id]

    # --- the configurations attached to a ticket ---------------------------------------------------------

    def attached_configurations(self, ticket_id: int) -> list[Record]:
        """The items of GET /service/tickets/{id}/configurations, in configuration id order."""
        self.store.get("tickets", ticket_id)
        return [self.store.configuration_reference(i) for i in self.store.ticket_configurations.get(ticket_id, ())]

    def attached_configuration(self, ticket_id: int, configuration_id: int) -> Record:
        self.store.get("tickets", ticket_id)
        if configuration_id not in self.store.ticket_configurations.get(ticket_id, ()):
            raise not_found("Configuration", configuration_id)
        return self.store.configuration_reference(configuration_id)

    def attach_configuration(self, ticket_id: int, body: Any) -> Record:
        """POST /service/tickets/{id}/configurations with `{"id": N}` or `{"deviceIdentifier": "..."}`.

        The missing-key error is ConnectWise's own (examples/error_bodies.json). [I] An unknown configuration
        is a 400 with a NotFound field error (as ConnectWise reports references inside a body), and a configuration
        of another company may be attached. Attaching one twice answers 409 (API.md)."""
        self.store.get("tickets", ticket_id)
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        configuration_id, device = body.get("id"), body.get("deviceIdentifier")
        configuration: Record | None
        key: int | str
        if configuration_id is not None:
            if not _is_int(configuration_id):
                raise invalid_object(
                    "configuration",
                    [field_error("InvalidField", "The id field has an invalid value.", "configuration", "id")],
                )
            configuration, key, field = self.store["configurations"].get(configuration_id), configuration_id, "id"
        elif isinstance(device, str) and device.strip():
            configuration, key, field = (
                self.store.find("configurations", "deviceIdentifier", device),
                device,
                "deviceIdentifier",
            )
        else:
            raise invalid_object(
                "configuration",
                [field_error("MissingRequiredField", "id or deviceIdentifier is required.", "configuration", "id")],
            )
        if configuration is None:
            raise invalid_object(
                "configuration", [field_error("NotFound", f"Configuration {key} not found", "configuration", field)]
            )
        attached = self.store.ticket_configurations.setdefault(ticket_id, [])
        if configuration["id"] in attached:
            # 409 is ConnectWise's (API.md); [I] its body, in ConnectWise's error shape.
            raise ApiError(
                409,
                {
                    "code": "ObjectExists",
                    "message": f"Configuration {configuration['id']} is already attached to ticket {ticket_id}.",
                    "errors": None,
                },
            )
        bisect.insort(attached, configuration["id"])
        return self.store.configuration_reference(configuration["id"])

    def detach_configuration(self, ticket_id: int, configuration_id: int) -> None:
        self.store.get("tickets", ticket_id)
        attached = self.store.ticket_configurations.get(ticket_id, [])
        if configuration_id not in attached:
            raise not_found("Configuration", configuration_id)
        attached.remove(configuration_id)
        if not attached:
            del self.store.ticket_configurations[ticket_id]

    # --- shared steps ----------------------------------------------------------------------------------

    def existing(self, name: str, record_id: int, parent_id: int | None) -> Record:
        record = self.store.get(name, record_id)
        parent = TABLES[name].parent
        if parent_id is not None and (parent is None or parent.id_of(record) != parent_id):
            raise not_found(TABLES[name].label, record_id)
        return record

    def _save(
        self, table: Table, record: Record, old: Record, changed: set[str], actor: str, *, skip: bool = False
    ) -> Record:
        errors: Errors = []
        self._resolve(table, record, changed, errors)
        self._rules(table, record, old, changed, actor, errors)
        if errors:
            raise invalid_object(table.resource, errors)
        now = now_iso()
        record["_info"] = self._info(table, record, actor, now, old)
        self.store.put(table.name, record)
        self._after(table, old, record, actor, now)
        self._changed(table.name, "updated", record, actor, skip=skip)
        return record

    def _clean(self, table: Table, body: Any) -> Record:
        """The body's known fields, without nulls and server-owned keys."""
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        fields = MODEL_FIELDS[table.model]
        return {
            k: v
            for k, v in body.items()
            if v is not None and k in fields and k not in ("id", "_info") and k not in table.ignored_in_body
        }

    def _require(self, table: Table, record: Record, errors: Errors, only: set[str] | None = None) -> None:
        """A MissingRequiredField error for each required field `record` lacks (among `only`, if given)."""
        for field in table.required:
            if only is not None and field not in only:
                continue
            value = record.get(field)
            if value is None or (isinstance(value, str) and not value.strip()):
                errors.append(
                    field_error("MissingRequiredField", f"The {field} field is required.", table.resource, field)
                )

    def _require_on_update(self, table: Table, record: Record, sent: set[str], errors: Errors) -> None:
        """A MissingRequiredField error for each field an update must carry that it did not `sent` (or nulled)."""
        for field in table.required_on_update:
            if field not in sent or record.get(field) is None:
                errors.append(
                    field_error(
                        "MissingRequiredField", f"The {field} field is required on updates.", table.resource, field
                    )
                )

    def _set_parent(self, table: Table, record: Record, parent_id: int | None) -> None:
        """Link a record of a child resource to the parent in its URL."""
        parent = _url_parent(table)
        if parent is None or parent_id is None:
            return
        self.store.get(parent.table, parent_id)
        is_reference = MODEL_FIELDS[table.model][parent.field] == "reference"
        record[parent.field] = {"id": parent_id} if is_reference else parent_id

    def _resolve(self, table: Table, record: Record, changed: set[str], errors: Errors) -> None:
        """Type-check the changed fields and turn changed references into full reference objects."""
        fields = MODEL_FIELDS[table.model]
        for field in sorted(changed):
            if field not in record:
                continue
            value = record[field]
            kind = fields.get(field)
            if kind is None:
                continue
            if not _TYPE_CHECKS[kind](value):
                errors.append(
                    field_error("InvalidField", f"The {field} field has an invalid value.", table.resource, field)
                )
                continue
            if kind == "datetime" and not _is_datetime(value):
                errors.append(
                    field_error(
                        "InvalidField",
                        f"The {field} field must be a date-time such as 2026-01-31T09:00:00Z.",
                        table.resource,
                        field,
                    )
                )
                continue
            allowed = table.enums.get(field)
            if allowed is not None and isinstance(value, str):
                spelled = next((a for a in allowed if a.lower() == value.lower()), None)
                if spelled is None:
                    errors.append(
                        field_error(
                            "InvalidField",
                            f"The {field} field must be one of {', '.join(allowed)}.",
                            table.resource,
                            field,
                        )
                    )
                else:
                    record[field] = spelled
                continue
            if kind != "reference":
                continue
            target = table.reference(field)
            if target is not None and _url_parent(TABLES[target]) is not None:
                continue  # a board's status, type...: the table's rules resolve it on the record's board
            if target is None:
                record[field] = {k: v for k, v in value.items() if v is not None}
                continue
            found = self._lookup(target, value)
            if found is None:
                errors.append(
                    field_error(
                        "NotFound", f"{TABLES[target].label} {_key_text(value)} not found", table.resource, field
                    )
                )
            else:
                record[field] = self.store.ref(target, found["id"])

    def _lookup(self, target: str, value: Record, candidates: list[Record] | None = None) -> Record | None:
        """The record a reference names: by id, else by the table's natural keys (optionally among
        `candidates`)."""
        rows = self.store[target]
        record_id = value.get("id")
        if isinstance(record_id, int) and not isinstance(record_id, bool):
            found = rows.get(record_id)
            return found if candidates is None or found in candidates else None
        table = TABLES[target]
        for key in table.natural_keys + (("name",) if table.person else ()):
            # A reference spells the key as its own field (a configuration status's description is its `name`).
            wanted = value.get(next((ref for ref, field in table.ref_fields if field == key), key))
            if not isinstance(wanted, str):
                continue
            if candidates is None:
                return self.store.find(target, key, wanted)
            return next(
                (r for r in candidates if isinstance(r.get(key), str) and r[key].casefold() == wanted.casefold()), None
            )
        return None

    def _info(self, table: Table, record: Record, actor: str, now: str, old: Record | None) -> dict[str, str]:
        info = dict(old["_info"]) if old is not None and "_info" in old else {"dateEntered": now, "enteredBy": actor}
        info["lastUpdated"] = now
        info["updatedBy"] = actor
        if not table.info_entered:
            info.pop("dateEntered", None)
            info.pop("enteredBy", None)
        info.update(self.store.info_links(table.name, record["id"]))
        return info

    # --- per-table rules -------------------------------------------------------------------------------

    def _defaults(self, table: Table, record: Record, old: Record | None) -> None:
        """Fill what the record lacks with the table's defaults (a POST's, or what a PUT or a PATCH `remove`
        resets a field to)."""
        for field, value in table.defaults.items():
            record.setdefault(field, value)
        if old is None:
            for field, value in table.create_defaults.items():
                record.setdefault(field, value)
        for field, (target, key, wanted) in table.default_refs.items():
            if field not in record:
                found = self.store.find(target, key, wanted)
                if found is not None:
                    record[field] = self.store.ref(target, found["id"])
        order = table.order_field
        parent_id = table.parent.id_of(record) if table.parent is not None else None
        if order and order not in record and parent_id is not None:
            siblings = self.store.children(table.name, parent_id)
            record[order] = max((s.get(order, 0) for s in siblings if isinstance(s.get(order), int)), default=-1) + 1

    def _rules(
        self, table: Table, record: Record, old: Record | None, changed: set[str], actor: str, errors: Errors
    ) -> None:
        self._defaults(table, record, old)
        for field, limit in table.max_lengths.items():
            value = record.get(field)
            if isinstance(value, str) and len(value) > limit:
                errors.append(
                    field_error(
                        "InvalidField",
                        f"The field {field} must be a string with a maximum length of {limit}.",
                        table.resource,
                        field,
                    )
                )
        for field in table.unique:
            if field in changed:
                clash = self.store.find(table.name, field, record.get(field))
                if clash is not None and clash["id"] != record.get("id"):
                    errors.append(
                        field_error(
                            "ObjectExists", f"The {field} {record[field]} is already in use.", table.resource, field
                        )
                    )
        rules = _RULES.get(table.name)
        if rules is not None:
            rules(self, record, old, changed, actor, errors)

    def _ticket_rules(self, record: Record, old: Record | None, changed: set[str], actor: str, errors: Errors) -> None:
        if "agreement" in changed:
            self._agreement_of_company(record, errors)
        board = record.get("board")
        if not isinstance(board, dict) or not _is_int(board.get("id")) or any(e["field"] == "board" for e in errors):
            return
        board_id = board["id"]
        old_board = old.get("board") if old is not None else None
        board_changed = not isinstance(old_board, dict) or old_board.get("id") != board_id
        if board_changed:
            for field in _ON_BOARD:  # what a different board's status/type/... meant is lost
                if field not in changed and field in record:
                    if field == "status" and isinstance(record["status"], dict):
                        same_name = self._lookup(
                            "statuses",
                            {"name": record["status"].get("name")},
                            self.store.children("statuses", board_id),
                        )
                        if same_name is not None:
                            record["status"] = self.store.ref("statuses", same_name["id"])
                            continue
                    del record[field]
        if (
            "closedFlag" in changed
            and "status" not in changed
            and old is not None
            and isinstance(record.get("closedFlag"), bool)
            and record["closedFlag"] != old.get("closedFlag")
        ):
            # Setting closedFlag moves the ticket to its board's first closed status, clearing it reopens it.
            wanted_closed = record["closedFlag"]
            candidates = [
                s
                for s in self.store.children("statuses", board_id)
                if bool(s.get("closedStatus")) == wanted_closed and not s.get("inactive")
            ]
            pick = next((s for s in candidates if s.get("defaultFlag")), candidates[0] if candidates else None)
            if pick is not None:
                record["status"] = self.store.ref("statuses", pick["id"])
                changed = changed | {"status"}
        on_board = {field: self.store.children(table, board_id) for field, table in _ON_BOARD.items()}
        for field, table in _ON_BOARD.items():
            value = record.get(field)
            if field not in changed or value is None:
                continue
            if not isinstance(value, dict):
                errors.append(field_error("InvalidField", f"The {field} field has an invalid value.", "ticket", field))
                continue
            found = self._lookup(table, value, on_board[field])
            if found is None:
                anywhere = self._lookup(table, value)
                label = TABLES[table].label
                message = (
                    f"{label} {_key_text(value)} is not valid for board {board.get('name', board_id)}."
                    if anywhere is not None
                    else f"{label} {_key_text(value)} not found"
                )
                errors.append(
                    field_error("InvalidField" if anywhere is not None else "NotFound", message, "ticket", field)
                )
            else:
                record[field] = self.store.ref(table, found["id"])
        if "status" not in record and not any(e["field"] == "status" for e in errors):
            active = [s for s in on_board["status"] if not s.get("inactive")]
            # The board's default status; [I] failing that, the first open one of its workflow.
            default = next((s for s in active if s.get("defaultFlag")), None) or min(
                (s for s in active if not s.get("closedStatus")),
                default=None,
                key=lambda s: (s.get("sortOrder") if _is_int(s.get("sortOrder")) else 0, s["id"]),
            )
            if default is not None:
                record["status"] = self.store.ref("statuses", default["id"])
            else:  # [I] a board with no open status cannot take a ticket without one
                errors.append(
                    field_error(
                        "MissingRequiredField",
                        f"The status field is required: board {board.get('name', board_id)} has no default status.",
                        "ticket",
                        "status",
                    )
                )
        if old is None or "contact" in changed:
            self._contact_details(record, changed)
        if errors or not isinstance(record.get("status"), dict):
            return
        status = self.store["statuses"].get(record["status"].get("id"))
        if status is None:
            return
        if status.get("closedStatus"):
            record["closedFlag"] = True
            if old is not None and old.get("closedFlag") and "closedDate" in old:
                record["closedDate"], record["closedBy"] = old["closedDate"], old.get("closedBy", actor)
            else:
                record["closedDate"], record["closedBy"] = now_iso(), actor
        else:
            record["closedFlag"] = False
            record.pop("closedDate", None)
            record.pop("closedBy", None)
        if old is not None and "actualHours" in old:
            record["actualHours"] = old["actualHours"]

    def _agreement_of_company(self, record: Record, errors: Errors) -> None:
        """[I] A ticket's agreement must be one of the ticket's company (ConnectWise's exact rule and wording are
        not public; its screens offer only the company's agreements)."""
        agreement_ref, company_ref = record.get("agreement"), record.get("company")
        agreement_id = agreement_ref.get("id") if isinstance(agreement_ref, dict) else None
        agreement = self.store["agreements"].get(agreement_id) if _is_int(agreement_id) else None
        company_id = company_ref.get("id") if isinstance(company_ref, dict) else None
        if agreement is not None and (agreement.get("company") or {}).get("id") != company_id:
            errors.append(
                field_error(
                    "InvalidField",
                    f"Agreement {agreement['id']} is not an agreement of the ticket's company.",
                    "ticket",
                    "agreement",
                )
            )

    def _contact_details(self, record: Record, changed: set[str]) -> None:
        """contactName, contactPhoneNumber and contactEmailAddress follow the ticket's contact, unless the
        same write sets them."""
        contact_ref = record.get("contact")
        contact_id = contact_ref.get("id") if isinstance(contact_ref, dict) else None
        contact = self.store["contacts"].get(contact_id) if _is_int(contact_id) else None
        details = {"contactName": None, "contactPhoneNumber": None, "contactEmailAddress": None}
        if contact is not None:
            assert isinstance(contact_ref, dict)  # the contact was found by the id in it
            details["contactName"] = contact_ref.get("name") or None
            details["contactPhoneNumber"] = contact.get("defaultPhoneNbr")
            details["contactEmailAddress"] = next(
                (
                    c.get("value")
                    for c in contact.get("communicationItems") or ()
                    if isinstance(c, dict) and c.get("communicationType") == "Email"
                ),
                None,
            )
        elif contact_ref is not None:
            return  # an unresolved contact: its error is reported, the details are left alone
        for field, value in details.items():
            if field in changed and field in record:
                continue
            if value:
                record[field] = value
            else:
                record.pop(field, None)

    def _initial_notes(self, ticket: Record, body: Record, actor: str) -> None:
        """`initialDescription` & co. are POST-only: they become the ticket's first notes."""
        flags = {
            "initialDescription": "detailDescriptionFlag",
            "initialInternalAnalysis": "internalAnalysisFlag",
            "initialResolution": "resolutionFlag",
        }
        for key, flag in flags.items():
            text = body.get(key)
            if isinstance(text, str) and text.strip():
                note = {"text": text, flag: True, "issueFlag": key == "initialDescription"}
                # Part of the ticket's creation, which has called back already.
                self.create("notes", note, actor, parent_id=ticket["id"], calls_back=False)

    def _note_rules(self, record: Record, old: Record | None, changed: set[str], actor: str, errors: Errors) -> None:
        if not any(record.get(flag) is True for flag in _NOTE_FLAGS):
            errors.append(
                field_error(
                    "InvalidField",
                    "At least one of detailDescriptionFlag, internalAnalysisFlag or resolutionFlag must be true.",
                    "ticketNote",
                    "detailDescriptionFlag",
                )
            )
        if not isinstance(record.get("text"), str) or not record["text"].strip():
            errors.append(field_error("MissingRequiredField", "The text field is required.", "ticketNote", "text"))
        if old is None:
            record.setdefault("dateCreated", now_iso())
            record.setdefault("createdBy", actor)
            if "contact" not in record and "member" not in record:
                member = self.store.find("members", "identifier", actor)
                if member is not None:
                    record["member"] = self.store.ref("members", member["id"])
        record["internalFlag"] = record["internalAnalysisFlag"]
        record["externalFlag"] = record["detailDescriptionFlag"] or record["resolutionFlag"]

    def _time_rules(self, record: Record, old: Record | None, changed: set[str], actor: str, errors: Errors) -> None:
        if old is not None and old.get("status", "Open") not in EDITABLE_TIME_ENTRY_STATUSES:
            # [I] ConnectWise publishes no body for an edit of an entry in approval or billed (API.md: that is its
            # approval workflow's to correct): a 400 with a field error on status, like its other refusals.
            errors.append(
                field_error(
                    "InvalidField",
                    f"Time entry {old['id']} is {old['status']} and can no longer be changed; only "
                    f"{', '.join(EDITABLE_TIME_ENTRY_STATUSES)} entries can.",
                    "timeEntry",
                    "status",
                )
            )
            return
        charge_id = record.get("chargeToId")
        if charge_id is not None:
            record.setdefault("chargeToType", "ServiceTicket")
        ticket = None
        if _is_int(charge_id) and record.get("chargeToType") in TICKET_CHARGE_TYPES:
            ticket = self.store["tickets"].get(charge_id)
            if ticket is None:
                errors.append(field_error("NotFound", f"Ticket {charge_id} not found", "timeEntry", "chargeToId"))
            elif old is None or {"chargeToId", "chargeToType"} & changed:
                status_id = (ticket.get("status") or {}).get("id")
                status = self.store["statuses"].get(status_id, {}) if _is_int(status_id) else {}
                if status.get("timeEntryNotAllowed"):
                    errors.append(
                        field_error(
                            "InvalidField",
                            f"Time entries are not allowed on a ticket with status {status.get('name')}.",
                            "timeEntry",
                            "chargeToId",
                        )
                    )
        elif charge_id is not None and not any(e["field"] == "chargeToId" for e in errors):
            errors.append(
                field_error("InvalidField", "The chargeToId field has an invalid value.", "timeEntry", "chargeToId")
            )
        start = record.get("timeStart")
        if start is None or not _is_datetime(start):
            return
        end = record.get("timeEnd")
        if end is None and _is_number(record.get("actualHours")) and old is None:
            try:
                end = record["timeEnd"] = iso(parse_iso(start) + record["actualHours"] * 3600)
            except (OverflowError, OSError, ValueError):
                errors.append(
                    field_error(
                        "InvalidField", "The actualHours field has an invalid value.", "timeEntry", "actualHours"
                    )
                )
                return
        if end is None:
            errors.append(
                field_error(
                    "MissingRequiredField",
                    "The timeEnd field is required when actualHours is not given.",
                    "timeEntry",
                    "timeEnd",
                )
            )
            return
        if not _is_datetime(end):
            return
        seconds = parse_iso(end) - parse_iso(start)
        if seconds <= 0:
            errors.append(field_error("InvalidField", "timeEnd must be after timeStart.", "timeEntry", "timeEnd"))
            return
        deduct = record.get("hoursDeduct")
        if not _is_number(deduct):
            deduct = 0.0
        record["actualHours"] = round(max(seconds / 3600 - deduct, 0.0), 2)
        if old is None:
            member = record.get("member") or self._member_ref(actor)
            if member is not None:
                record["member"] = member
            default_type = self.store.find("workTypes", "overallDefaultFlag", True)
            if "workType" not in record and default_type is not None:
                record["workType"] = self.store.ref("workTypes", default_type["id"])
            record.setdefault("enteredBy", actor)
            record.setdefault("dateEntered", now_iso())
        if ticket is not None:
            record.setdefault("company", ticket["company"])
            record["ticket"] = self.store.ref("tickets", ticket["id"])
            for field, key in (("ticketBoard", "board"), ("ticketStatus", "status")):
                name = (ticket.get(key) or {}).get("name")
                if name is not None:
                    record[field] = name

    def _member_ref(self, identifier: str) -> Record | None:
        member = self.store.find("members", "identifier", identifier)
        return self.store.ref("members", member["id"]) if member is not None else None

    def _callback_rules(
        self, record: Record, old: Record | None, changed: set[str], actor: str, errors: Errors
    ) -> None:
        url = record.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            errors.append(field_error("InvalidField", "Invalid URL", "callbackEntry", "url"))
        kind, level = str(record.get("type", "")).lower(), str(record.get("level", "")).lower()
        if kind == "ticket" and level not in _TICKET_CALLBACK_LEVELS:
            errors.append(
                field_error(
                    "InvalidObject",
                    "Unrecognized level for type, see documentation for supported levels for each type",
                    "callbackEntry",
                    "level",
                )
            )
        for other in self.store["callbacks"].values():
            if other["id"] != record.get("id") and (
                other.get("url"),
                str(other.get("type")).lower(),
                str(other.get("level")).lower(),
                other.get("objectId"),
            ) == (url, kind, level, record.get("objectId")):
                errors.append(
                    field_error("ObjectExists", "A matching callback entry already exists", "callbackEntry", "objectId")
                )
                break
        if old is None:
            member = self.store.find("members", "identifier", actor)
            record.setdefault("memberId", member["id"] if member else 0)
            record["connectWiseID"] = str(uuid.uuid4())

    # --- after a write ---------------------------------------------------------------------------------

    def _after(self, table: Table, old: Record | None, new: Record, actor: str, now: str) -> None:
        """What a POST, PUT or PATCH (old -> new; old is None for a POST) changes beyond its record."""
        parent = table.parent
        if old is None and parent is not None and parent.updates_parent:
            self._touch(parent.table, parent.id_of(new), actor, now)
        if table.name == "timeEntries":
            self._recount_hours(old, new)

    def _recount_hours(self, old: Record | None, new: Record | None) -> None:
        """A ticket's actualHours is the sum of its time entries."""
        ticket_ids = {charged for r in (old, new) if r is not None and (charged := r.get("chargeToId")) is not None}
        for ticket_id in ticket_ids:
            ticket = self.store["tickets"].get(ticket_id)
            if ticket is not None:
                hours = round(sum(e.get("actualHours", 0.0) for e in self.store.children("timeEntries", ticket_id)), 2)
                self.store.put("tickets", {**ticket, "actualHours": hours})

    def _touch(self, name: str, record_id: int, actor: str, now: str) -> None:
        """Mark a record as updated by `actor` at `now`."""
        record = self.store[name].get(record_id)
        if record is not None:
            self.store.put(name, {**record, "_info": {**record["_info"], "lastUpdated": now, "updatedBy": actor}})


def _url_parent(table: Table) -> Parent | None:
    """The parent of a table served under its parent's item, whose id the URL gives."""
    return table.parent if table.parent is not None and table.parent.in_path else None


# The rules of a table that are code, run after its declarative ones (see Writer._rules).
_RULES: dict[str, Callable[[Writer, Record, Record | None, set[str], str, Errors], None]] = {
    "tickets": Writer._ticket_rules,
    "notes": Writer._note_rules,
    "timeEntries": Writer._time_rules,
    "callbacks": Writer._callback_rules,
}


def _skips_callback(body: Any) -> bool:
    """Whether a POST or PUT body asks that its write call nothing back."""
    return isinstance(body, dict) and body.get("skipCallback") is True


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_iso(value)
    except (TypeError, ValueError):
        return False
    return True


def _key_text(value: Record) -> str:
    for key in ("id", "identifier", "name"):
        if value.get(key) is not None:
            return str(value[key])
    return "(no id)"
