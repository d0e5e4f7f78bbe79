"""What the sandbox's store says about a customer, computed from its records as API.md states the rules: the
figures the customer tools' answers are checked against."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timezone


def company(store, identifier: str) -> dict:
    return next(c for c in store["companies"].values() if c["identifier"] == identifier)


def contacts_of(store, company_id: int, *, inactive: bool = False) -> list[dict]:
    return [
        c
        for c in store["contacts"].values()
        if c["company"]["id"] == company_id and (inactive or not c["inactiveFlag"])
    ]


def email_of(contact: dict) -> str:
    return next(i["value"] for i in contact["communicationItems"] if i["communicationType"] == "Email")


def devices_of(store, company_id: int) -> list[dict]:
    return [c for c in store["configurations"].values() if c["company"]["id"] == company_id]


def agreements_of(store, company_id: int) -> list[dict]:
    return [a for a in store["agreements"].values() if a["company"]["id"] == company_id]


def today() -> date:
    return datetime.now(timezone.utc).date()


def active_on(agreement: dict, day: date) -> bool:
    """API.md: not cancelled, status Active, and not past its end date unless it has none; and started."""

    def day_of(key: str) -> date | None:
        return datetime.fromisoformat(agreement[key].replace("Z", "+00:00")).date() if key in agreement else None

    started, ends = day_of("startDate"), day_of("endDate")
    return (
        not agreement["cancelledFlag"]
        and agreement.get("agreementStatus", "Active") == "Active"
        and (started is None or started <= day)
        and (agreement["noEndingDateFlag"] or ends is None or day <= ends)
    )


def active_agreements(store, company_id: int) -> list[dict]:
    return [a for a in agreements_of(store, company_id) if active_on(a, today())]


def devices_by_type(store, company_id: int) -> dict[str, int]:
    """The company's active configurations, counted by type name."""
    return dict(
        Counter(
            c["type"]["name"]
            for c in store["configurations"].values()
            if c["company"]["id"] == company_id and c.get("activeFlag")
        )
    )


def open_tickets(store, company_id: int) -> int:
    return sum(1 for t in store["tickets"].values() if t["company"]["id"] == company_id and not t["closedFlag"])
