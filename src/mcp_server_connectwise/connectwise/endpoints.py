"""Every ConnectWise REST path this server calls, relative to the tenant's API base URL.

One place, so that a path is spelled once and a reader can see at a glance what the server touches.
"""

from __future__ import annotations

from urllib.parse import quote

TICKETS = "/service/tickets"
BOARDS = "/service/boards"
PRIORITIES = "/service/priorities"
MEMBERS = "/system/members"
TIME_ENTRIES = "/time/entries"
WORK_TYPES = "/time/workTypes"
COMPANIES = "/company/companies"
CONTACTS = "/company/contacts"
CONFIGURATIONS = "/company/configurations"
AGREEMENTS = "/finance/agreements"
CONFIGURATION_TYPES = f"{CONFIGURATIONS}/types"
CONFIGURATION_STATUSES = f"{CONFIGURATIONS}/statuses"
CALLBACKS = "/system/callbacks"


def ticket(ticket_id: int) -> str:
    return f"{TICKETS}/{ticket_id}"


def time_entry(entry_id: int) -> str:
    return f"{TIME_ENTRIES}/{entry_id}"


def ticket_notes(ticket_id: int) -> str:
    return f"{ticket(ticket_id)}/notes"


def ticket_configurations(ticket_id: int) -> str:
    return f"{ticket(ticket_id)}/configurations"


def ticket_configuration(ticket_id: int, configuration_id: int) -> str:
    """A configuration attached to a ticket: DELETE detaches it."""
    return f"{ticket_configurations(ticket_id)}/{configuration_id}"


def company(company_id: int) -> str:
    return f"{COMPANIES}/{company_id}"


def agreement(agreement_id: int) -> str:
    return f"{AGREEMENTS}/{agreement_id}"


def contact(contact_id: int) -> str:
    return f"{CONTACTS}/{contact_id}"


def configuration(configuration_id: int) -> str:
    return f"{CONFIGURATIONS}/{configuration_id}"


def callback(callback_id: int) -> str:
    return f"{CALLBACKS}/{callback_id}"


def board_statuses(board_id: int) -> str:
    return f"{BOARDS}/{board_id}/statuses"


def board_types(board_id: int) -> str:
    return f"{BOARDS}/{board_id}/types"


def board_subtypes(board_id: int) -> str:
    return f"{BOARDS}/{board_id}/subtypes"


def board_items(board_id: int) -> str:
    return f"{BOARDS}/{board_id}/items"


def member_tokens(identifier: str) -> str:
    """POST here makes keys that act as the member (impersonation). The identifier is quoted: it comes from
    configuration."""
    return f"{MEMBERS}/{quote(identifier, safe='')}/tokens"


def count(list_path: str) -> str:
    """How many records a list such as TICKETS holds (with the same conditions)."""
    return f"{list_path}/count"


def company_info(company_id: str) -> str:
    """Where a site tells which codebase serves a company. Relative to the site's origin, not to an API base
    URL: it is how that base URL is found. The company id is quoted, as it comes from configuration."""
    return f"/login/companyinfo/{quote(company_id, safe='')}"
