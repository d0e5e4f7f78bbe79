"""A company's agreements (contracts), and which of them a ticket can be put under today.

An agreement is usable on a ticket when it is of the ticket's own company and active today (API.md): not
cancelled, its `agreementStatus` Active, started, and not past its end date unless it has none
(`noEndingDateFlag`). The end date is a day: an agreement ending today is still active today. "Today" is the
UTC date, as ConnectWise stores the dates in UTC.

One request lists all of a company's agreements (cancelled and expired ones too, so that a refusal can say why
one cannot be used); the listing, the resolver and the default all read that one list.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated

from pydantic import BaseModel, Field

from mcp_server_connectwise.connectwise import NotFoundError, endpoints
from mcp_server_connectwise.connectwise import conditions as cw
from mcp_server_connectwise.connectwise.models import Agreement, Company, label
from mcp_server_connectwise.services import clock, resolve
from mcp_server_connectwise.services.arguments import CompanyName
from mcp_server_connectwise.services.companies import company as resolve_company
from mcp_server_connectwise.services.companies import described
from mcp_server_connectwise.services.errors import Look, Refused, shown
from mcp_server_connectwise.services.tenancy import TenantSession
from mcp_server_connectwise.untrusted import UntrustedText, untrusted_notice

AGREEMENT_FIELDS = (
    "id",
    "name",
    "type",
    "company",
    "agreementStatus",
    "cancelledFlag",
    "startDate",
    "endDate",
    "noEndingDateFlag",
    "sla",
)


def today() -> date:
    return clock.now().date()


def last_day(agreement: Agreement) -> date | None:
    """The agreement's last day, None when it has no end date."""
    return agreement.end_date.date() if agreement.end_date and not agreement.no_ending_date_flag else None


def not_usable_because(agreement: Agreement, on: date) -> str | None:
    """Why `agreement` cannot be put on a ticket `on` that day ("cancelled", "expired (it ended 2026-09-03)"),
    or None when it can."""
    if agreement.cancelled_flag:
        return "cancelled"
    ended = last_day(agreement)
    status = (agreement.agreement_status or "Active").strip()
    if status.casefold() != "active":
        return status.lower() + (f" (it ended {ended})" if ended and ended < on else "")
    if agreement.start_date is not None and agreement.start_date.date() > on:
        return f"not started (it starts {agreement.start_date.date()})"
    if ended is not None and ended < on:
        return f"expired (it ended {ended})"
    return None


def _shown(agreement: Agreement) -> str:
    kind = label(agreement.type)
    return f"{agreement.name or agreement.id} (id {agreement.id}{f', {kind}' if kind else ''})"


def usable_list(company: Company, agreements: Sequence[Agreement], on: date) -> str:
    """The end of a refusal: the agreements of `company` a ticket can be put under `on` that day."""
    usable = [a for a in agreements if not_usable_because(a, on) is None]
    if not usable:
        return f"company {described(company)} has no active agreement"
    return f"the active agreements of company {described(company)}: {', '.join(_shown(a) for a in usable)}"


async def company_agreements(session: TenantSession, company: Company) -> list[Agreement]:
    """Every agreement of `company`, cancelled and expired ones too, by name: one request per 1,000."""
    rows = await session.client.list_all(
        endpoints.AGREEMENTS, conditions=cw.eq("company/id", company.id), fields=AGREEMENT_FIELDS
    )
    agreements = [Agreement.model_validate(row) for row in rows]
    return sorted(agreements, key=lambda a: (resolve.normalise(a.name or ""), a.id))


def _match(agreements: Sequence[Agreement], value: str | int, on: date) -> list[Agreement]:
    """The agreements `value` names: the one of its id, else those of its name, else those whose name contains
    it. Of several with one name (a renewal keeps its name), the one usable today is taken. An id matches no
    part of a name: 20 is not "Block Time 20 Hours"."""
    wanted_id = resolve.as_id(value)
    by_id = [a for a in agreements if a.id == wanted_id][:1] if wanted_id is not None else []
    if by_id:
        return by_id
    wanted = resolve.normalise(str(value))
    named = [a for a in agreements if a.name and resolve.normalise(a.name) == wanted]
    if not named and wanted_id is None:
        named = [a for a in agreements if a.name and wanted in resolve.normalise(a.name)]
    usable = [a for a in named if not_usable_because(a, on) is None]
    return usable if len(named) > 1 and len(usable) == 1 else named


async def usable_agreement(session: TenantSession, company: Company, value: str | int) -> Agreement:
    """The agreement of `company` that `value` names, if it is active today; refused otherwise, with the
    company's usable agreements (and, for another company's agreement id, whose it is)."""
    resolve.name_or_id("agreement", value)
    on = today()
    agreements = await company_agreements(session, company)

    async def which_there_are() -> str:
        return (
            f"Company {described(company)} has no agreement {shown(value)}"
            f"{await _elsewhere(session, value)}; {usable_list(company, agreements, on)}."
        )

    found = await resolve.one_of(
        value,
        _match(agreements, value, on),
        shown_as=_shown,
        several=f"agreements of company {described(company)}",
        give="agreement as one of their ids",
        none=which_there_are,
        look=Look.AGREEMENTS,
    )
    why = not_usable_because(found, on)
    if why is not None:
        raise Refused(
            f"Agreement {_shown(found)} of company {described(company)} is {why}, so no ticket can be put under "
            f"it; {usable_list(company, agreements, on)}.",
            look=Look.AGREEMENTS,
        )
    return found


async def _elsewhere(session: TenantSession, value: str | int) -> str:
    """For an id that is not one of the company's agreements: whose agreement it is, if it is one."""
    agreement_id = resolve.as_id(value)
    if agreement_id is None:
        return ""
    try:
        other = Agreement.model_validate(await session.client.get(endpoints.agreement(agreement_id)))
    except NotFoundError:
        return ""
    return f" (agreement {agreement_id}, {other.name}, is one of company {label(other.company)})"


def of_type(agreements: Sequence[Agreement], agreement_type: str, on: date) -> list[Agreement]:
    """The agreements of type `agreement_type` (any case) usable `on` that day."""
    wanted = resolve.normalise(agreement_type)
    return [
        a
        for a in agreements
        if (kind := label(a.type)) and resolve.normalise(kind) == wanted and not_usable_because(a, on) is None
    ]


# --- list_agreements -------------------------------------------------------------------------------------


class AgreementQuery(BaseModel):
    company: CompanyName
    include_inactive: Annotated[bool, Field(description="Also cancelled, expired and inactive ones.")] = False


class AgreementRow(BaseModel):
    id: int
    name: str | None = None
    type: str | None = None
    status: str | None = None
    start: date | None = None
    end: date | None = Field(None, description="Last day; none: no end date.")
    sla: str | None = None
    usable: bool = Field(description="Active today: a ticket can be put under it.")
    why_not: str | None = Field(None, description="Why it is not usable.")

    @classmethod
    def of(cls, agreement: Agreement, on: date) -> AgreementRow:
        why = not_usable_because(agreement, on)
        return cls(
            id=agreement.id,
            name=agreement.name,
            type=label(agreement.type),
            status=agreement.agreement_status,
            start=agreement.start_date.date() if agreement.start_date else None,
            end=last_day(agreement),
            sla=label(agreement.sla),
            usable=why is None,
            why_not=why,
        )


class Agreements(BaseModel):
    tenant: str
    company: UntrustedText | None = None
    company_identifier: str | None = None
    agreements: list[AgreementRow]
    notice: str = untrusted_notice("company")


async def list_agreements(session: TenantSession, query: AgreementQuery) -> Agreements:
    company = await resolve_company(session, query.company)
    on = today()
    rows = [AgreementRow.of(a, on) for a in await company_agreements(session, company)]
    return Agreements(
        tenant=session.name,
        company=company.name,
        company_identifier=company.identifier,
        agreements=[row for row in rows if row.usable or query.include_inactive],
    )
