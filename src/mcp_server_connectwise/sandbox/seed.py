"""Deterministic seed data: the same `seed` gives the same store, byte for byte.

Everything is dated relative to the settings' `now` (SEED_NOW by default), not the clock. Tickets are built
in one cheap loop (plain dicts, shared reference objects); their notes and time entries are planned in that
loop as small tuples and only turned into records when something first reads those tables, so 100,000
tickets seed in a few seconds.
"""

from __future__ import annotations

import random
import time
import unicodedata
import uuid
from collections.abc import Callable

from mcp_server_connectwise.sandbox import seed_text as text
from mcp_server_connectwise.sandbox.settings import API_MEMBER_IDENTIFIER, SEED_NOW, SandboxSettings  # noqa: F401
from mcp_server_connectwise.sandbox.store import Record, Store, iso

_DAY = 86400.0
_HISTORY_DAYS = 180
FIRST_TICKET_ID = 1001

# (name, closedStatus, timeEntryNotAllowed, defaultFlag, escalationStatus, inactive)
_SERVICE_DESK_STATUSES = (
    ("New", False, False, True, "NotResponded", False),
    ("Assigned", False, False, False, "Responded", False),
    ("In Progress", False, False, False, "ResolutionPlan", False),
    ("Waiting on Customer", False, False, False, "NoEscalation", False),
    ("Waiting on Vendor", False, False, False, "NoEscalation", False),
    ("Scheduled", False, False, False, "ResolutionPlan", False),
    ("Customer Updated", False, False, False, "Responded", False),
    ("Pending Approval", False, True, False, "NoEscalation", False),
    ("Resolved", True, False, False, "Resolved", False),
    (">Closed", True, True, False, "Resolved", False),
    ("Cancelled", True, True, False, "Resolved", False),
    ("Old - Do Not Use", False, False, False, "NoEscalation", True),
)
_ALERT_STATUSES = (
    ("New", False, False, True, "NotResponded", False),
    ("Acknowledged", False, False, False, "Responded", False),
    ("Investigating", False, False, False, "ResolutionPlan", False),
    ("Auto-Closed", True, True, False, "Resolved", False),
    ("Closed", True, False, False, "Resolved", False),
)
_ONBOARDING_STATUSES = (
    ("New", False, False, True, "NotResponded", False),
    ("Planning", False, False, False, "Responded", False),
    ("Waiting on Hardware", False, False, False, "NoEscalation", False),
    ("Provisioning", False, False, False, "ResolutionPlan", False),
    ("Ready for Go-Live", False, False, False, "ResolutionPlan", False),
    ("Completed", True, False, False, "Resolved", False),
    ("Cancelled", True, True, False, "Resolved", False),
)
_ESCALATION_STATUSES = (
    ("New", False, False, True, "NotResponded", False),
    ("Escalated", False, False, False, "Responded", False),
    ("In Progress", False, False, False, "ResolutionPlan", False),
    ("Waiting on Customer", False, False, False, "NoEscalation", False),
    ("Resolved", True, False, False, "Resolved", False),
    ("Closed", True, True, False, "Resolved", False),
)
_LEGACY_STATUSES = (
    ("New", False, False, True, "NotResponded", False),
    ("Closed", True, True, False, "Resolved", False),
)
# (name, inactive, statuses, types, issues, share of seeded tickets)
BOARDS = (
    (
        "Service Desk",
        False,
        _SERVICE_DESK_STATUSES,
        ("Incident", "Service Request", "Problem", "Change Request"),
        text.SERVICE_DESK_ISSUES,
        0.6,
    ),
    ("Alerts", False, _ALERT_STATUSES, ("Alert",), text.ALERT_ISSUES, 0.2),
    ("Onboarding & Projects", False, _ONBOARDING_STATUSES, ("Service Request", "Project"), text.ONBOARDING_ISSUES, 0.1),
    ("Escalations", False, _ESCALATION_STATUSES, ("Incident", "Problem"), text.ESCALATION_ISSUES, 0.1),
    ("Legacy Helpdesk", True, _LEGACY_STATUSES, ("Incident",), (), 0.0),
)
# (name, level, color, default, respond hours, plan hours, resolve hours, share of tickets)
PRIORITIES = (
    ("Priority 1 - Emergency Response", "Critical", "Red", False, 0.5, 2, 4, 0.04),
    ("Priority 2 - Quick Response", "High", "Orange", False, 1, 4, 8, 0.16),
    ("Priority 3 - Normal Response", "Medium", "Yellow", True, 4, 8, 24, 0.6),
    ("Priority 4 - Schedule Maintenance", "Low", "Green", False, 8, 24, 72, 0.15),
    ("Do Not Respond", "Low", "Gray", False, 24, 72, 168, 0.05),
)
# (name, billTime, rateType, rate, default)
WORK_TYPES = (
    ("Remote Support", "Billable", "AdjAmount", 0.0, True),
    ("Onsite Support", "Billable", "AdjAmount", 25.0, False),
    ("After Hours", "Billable", "Multiplier", 1.5, False),
    ("Admin", "DoNotBill", "AdjAmount", 0.0, False),
    ("Travel", "NoCharge", "AdjAmount", 0.0, False),
)
WORK_ROLES = (
    ("Technician I", 95.0),
    ("Technician II", 125.0),
    ("Engineer", 165.0),
    ("Service Manager", 150.0),
    ("Automation", 0.0),
)
SOURCES = ("Phone", "Email Connector", "Portal", "RMM Alert", "Walk In", "API")
_STATIC = {
    "teams": ("Tier 1", "Tier 2", "NOC"),
    "locations": ("Tampa HQ", "Remote Staff"),
    "departments": ("Managed Services", "Professional Services"),
    "serviceLocations": ("Remote", "On-Site", "In-house"),
    "slas": ("Standard SLA", "Premium SLA"),
    "countries": ("United States", "Canada"),
    "companyStatuses": ("Active", "Inactive", "Credit Hold"),
    "companyTypes": ("Owner", "Client", "Vendor", "Prospect"),
    "agreementTypes": ("Managed Services", "Block Time", "Break Fix"),
    "securityRoles": ("Admin", "Technician", "API Member"),
}
# A seeded time entry's status by how many weeks before this week it was worked: this week's time sheet is
# open and so is last week's (due tonight when the seed's now is a Monday, as SEED_NOW is); the one before is
# submitted, the two before that approved and ready to bill; older ones are billed.
_TIME_SHEET_STAGES = ("Open", "Open", "PendingApproval", "ApprovedByTierOne", "ReadyToBill")
# [I] One entry in this many was sent back by its approver and never corrected: Rejected (so still editable by
# its member) whatever its age. Entry ids are the same whatever the seed's size, so examples can name one.
_REJECTED_EVERY = 25
# Each customer has one active agreement of type 1 + id % 3 (AGREEMENT_NAMES), but those named here, which have
# these (name, agreement type id, state): none, two active, an expired and a cancelled one. States: "active" (ends
# in a few years), "open" (no end date), "expired" (ended before the seed's now), "cancelled".
AGREEMENT_NAMES = ("Managed Services - Gold", "Block Time 20 Hours", "Break Fix")
AGREEMENTS: dict[str, tuple[tuple[str, int, str], ...]] = {
    "ACME": (("Break Fix", 3, "active"), ("Managed Services - Gold", 1, "open")),
    "OBrienDental": (("Managed Services - Gold", 1, "active"), ("Block Time 10 Hours", 2, "expired")),
    "SmithJones": (("Managed Services - Silver", 1, "cancelled"), ("Block Time 20 Hours", 2, "active")),
    "GreenValley": (),
    "Riverside": (),
}
# Companies that are not simply an active client, and contacts who have left their company.
COMPANY_STATUS = {"HundredPct": "Credit Hold"}
COMPANY_TYPES = {"SandboxMSP": ("Owner",), "BracketSys": ("Client", "Vendor")}
INACTIVE_CONTACTS = {("ACME", "Johnson")}
CONFIGURATION_TYPES = ("Managed Server", "Managed Workstation", "Firewall", "Printer")
# (description, closedFlag): a configuration without a status gets the first, the default.
CONFIGURATION_STATUSES = (("Active", False), ("Inactive", True))
_SEVERITY_IMPACT = ("Low", "Medium", "Medium", "High")
_BILLABLE = ("Billable", "Billable", "Billable", "NoCharge", "DoNotBill")
_HOURS = (0.25, 0.5, 0.5, 0.75, 1.0, 1.0, 1.5, 2.0, 3.0)
# Where the next deadline of a ticket back from a wait falls, in minutes after the seed's now (see _TicketSeeder.sla).
_RESUMED_DUE_MINUTES = (-50, 15, 45, 80, 115, 200)


def seed_store(store: Store, settings: SandboxSettings) -> None:
    """Fill `store` with the sandbox's MSP: its members, boards, customers and `settings.tickets` tickets."""
    _Seeder(store, random.Random(settings.seed), settings.now).run(settings.tickets)


def _ascii(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


class _Seeder:
    def __init__(self, store: Store, rng: random.Random, now: float) -> None:
        self.store = store
        self.rng = rng
        self.rand = rng.random
        self.now = now
        self.base_info = {"lastUpdated": iso(now - 200 * _DAY), "updatedBy": "jsmith"}

    def run(self, tickets: int) -> None:
        self.static_tables()
        self.members()
        self.service_setup()
        self.boards()
        self.companies()
        self.callbacks()
        self.tickets(tickets)

    # --- helpers ---------------------------------------------------------------------------------------

    def info(self, days_ago: float = 200) -> dict[str, str]:
        entered = iso(self.now - days_ago * _DAY)
        return {"lastUpdated": entered, "updatedBy": "jsmith", "dateEntered": entered, "enteredBy": "jsmith"}

    def guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def table(self, name: str, rows: list[Record]) -> None:
        self.store.set_table(name, {row["id"]: row for row in rows})

    def ref(self, name: str, record_id: int) -> Record:
        return self.store.ref(name, record_id)

    def named(self, name: str, record_name: str) -> Record:
        """The reference to the record of static table `name` called `record_name`."""
        return self.ref(name, _STATIC[name].index(record_name) + 1)

    # --- reference data --------------------------------------------------------------------------------

    def static_tables(self) -> None:
        for name, names in _STATIC.items():
            self.table(name, [{"id": i, "name": n} for i, n in enumerate(names, 1)])
        self.table("currencies", [{"id": 1, "symbol": "$", "currencyCode": "USD", "name": "US Dollars"}])
        self.table(
            "configurationTypes",
            [
                {"id": i, "name": n, "inactiveFlag": False, "systemFlag": False}
                for i, n in enumerate(CONFIGURATION_TYPES, 1)
            ],
        )
        self.table(
            "configurationStatuses",
            [
                {"id": i, "description": description, "closedFlag": closed, "defaultFlag": i == 1}
                for i, (description, closed) in enumerate(CONFIGURATION_STATUSES, 1)
            ],
        )

    def members(self) -> None:
        rows: list[Record] = []
        for i, (identifier, first, last, title, license_class) in enumerate(text.MEMBERS, 1):
            api = identifier == API_MEMBER_IDENTIFIER
            rows.append(
                {
                    "id": i,
                    "identifier": identifier,
                    "disableOnlineFlag": api,
                    "licenseClass": license_class,
                    "inactiveFlag": identifier == text.INACTIVE_MEMBER,
                    "firstName": first,
                    "lastName": last,
                    "hireDate": iso(self.now - (900 + 97 * i) * _DAY),
                    "officeEmail": f"{_ascii(first)}.{_ascii(last)}@sandbox-msp.example",
                    "defaultEmail": "Office",
                    "defaultPhone": "Office",
                    "officePhone": f"813-555-01{i:02d}",
                    "securityRole": self.ref("securityRoles", 3 if api else (1 if identifier == "jsmith" else 2)),
                    "title": title,
                    "adminFlag": identifier == "jsmith",
                    "dailyCapacity": 0.0 if api else 8.0,
                    "hourlyCost": 0.0 if api else 45.0 + 5 * i,
                    "defaultLocation": self.ref("locations", 1),
                    "defaultDepartment": self.ref("departments", 1),
                    "includeInUtilizationReportingFlag": not api,
                    "_info": self.info(),
                }
            )
        for row in rows:
            if row["inactiveFlag"]:
                row["inactiveDate"] = iso(self.now - 40 * _DAY)
        self.table("members", rows)
        self.member_ids = {row["identifier"]: row["id"] for row in rows}
        self.technicians = [self.ref("members", self.member_ids[t]) for t in text.TECHNICIANS]

    def service_setup(self) -> None:
        self.table(
            "priorities",
            [
                {
                    "id": i,
                    "name": name,
                    "color": color,
                    "sortOrder": i,
                    "defaultFlag": default,
                    "imageLink": f"{self.store.href('priorities', {'id': i})}/image?lm=2026-01-01T00:00:00Z",
                    "urgencySortOrder": str(i),
                    "level": level,
                    "_info": dict(self.base_info),
                }
                for i, (name, level, color, default, *_rest) in enumerate(PRIORITIES, 1)
            ],
        )
        self.table(
            "workTypes",
            [
                {
                    "id": i,
                    "name": name,
                    "billTime": bill,
                    "rateType": rate_type,
                    "rate": rate,
                    "hoursMin": 0.0,
                    "hoursMax": 0.0,
                    "roundBillHoursTo": 0.25,
                    "accrualType": "None",
                    "inactiveFlag": False,
                    "overallDefaultFlag": default,
                    "activityDefaultFlag": default,
                    "utilizationFlag": bill == "Billable",
                    "costMultiplier": 1.0,
                    "_info": dict(self.base_info),
                }
                for i, (name, bill, rate_type, rate, default) in enumerate(WORK_TYPES, 1)
            ],
        )
        self.table(
            "workRoles",
            [
                {"id": i, "name": name, "hourlyRate": rate, "inactiveFlag": False, "_info": dict(self.base_info)}
                for i, (name, rate) in enumerate(WORK_ROLES, 1)
            ],
        )
        self.table(
            "sources",
            [
                {
                    "id": i,
                    "name": name,
                    "defaultFlag": name == "Phone",
                    "enteredBy": "jsmith",
                    "dateEntered": iso(self.now - 400 * _DAY),
                    "_info": dict(self.base_info),
                }
                for i, name in enumerate(SOURCES, 1)
            ],
        )

    def boards(self) -> None:
        boards: list[Record] = []
        statuses: list[Record] = []
        types: list[Record] = []
        subtypes: list[Record] = []
        items: list[Record] = []
        self.board_setup: list[tuple] = []
        for board_id, (name, inactive, board_statuses, type_names, issues, share) in enumerate(BOARDS, 1):
            boards.append(
                {
                    "id": board_id,
                    "name": name,
                    "location": self.ref("locations", 1),
                    "department": self.ref("departments", 1),
                    "inactiveFlag": inactive,
                    "projectFlag": False,
                    "billTime": "Billable",
                    "billExpense": "Billable",
                    "billProduct": "Billable",
                    "workRole": self.ref("workRoles", 1),
                    "workType": self.ref("workTypes", 1),
                    "timeEntryDiscussionFlag": False,
                    "timeEntryInternalAnalysisFlag": True,
                    "timeEntryResolutionFlag": False,
                    "problemSort": "Ascending",
                    "resolutionSort": "Ascending",
                    "internalAnalysisSort": "Ascending",
                    "markFirstNoteIssueFlag": True,
                    "notifyEmailFrom": "support@sandbox-msp.example",
                    "notifyEmailFromName": "Sandbox Service Desk",
                    "dispatchMember": self.ref("members", self.member_ids["dispatch"]),
                    "_info": self.info(),
                }
            )
            self.store.set_table("boards", {b["id"]: b for b in boards})
            board_ref = self.ref("boards", board_id)
            for sort, (s_name, closed, no_time, default, escalation, s_inactive) in enumerate(board_statuses):
                statuses.append(
                    {
                        "id": len(statuses) + 1,
                        "name": s_name,
                        "board": board_ref,
                        "sortOrder": sort,
                        "displayOnBoard": not s_inactive,
                        "inactive": s_inactive,
                        "closedStatus": closed,
                        "timeEntryNotAllowed": no_time,
                        "roundRobinCatchall": False,
                        "defaultFlag": default,
                        "escalationStatus": escalation,
                        "customerPortalDescription": s_name.lstrip(">"),
                        "customerPortalFlag": not s_inactive,
                        "saveTimeAsNote": False,
                        "_info": dict(self.base_info),
                    }
                )
            first_type = len(types) + 1
            for t_name in type_names:
                types.append(
                    {
                        "id": len(types) + 1,
                        "name": t_name,
                        "category": "Reactive",
                        "defaultFlag": len(types) + 1 == first_type,
                        "inactiveFlag": False,
                        "requestForChangeFlag": t_name == "Change Request",
                        "board": board_ref,
                        "_info": dict(self.base_info),
                    }
                )
            subtype_ids: dict[str, int] = {}
            item_ids: dict[str, int] = {}
            for _summary, subtype, item in issues:
                if subtype not in subtype_ids:
                    subtype_ids[subtype] = len(subtypes) + 1
                    subtypes.append(
                        {
                            "id": len(subtypes) + 1,
                            "name": subtype,
                            "inactiveFlag": False,
                            "typeAssociationIds": list(range(first_type, len(types) + 1)),
                            "board": board_ref,
                            "_info": dict(self.base_info),
                        }
                    )
                if item and item not in item_ids:
                    item_ids[item] = len(items) + 1
                    items.append(
                        {
                            "id": len(items) + 1,
                            "name": item,
                            "inactiveFlag": False,
                            "board": board_ref,
                            "_info": dict(self.base_info),
                        }
                    )
            self.board_setup.append((board_id, first_type, len(types) + 1, issues, share, subtype_ids, item_ids))
        for name, rows in (("statuses", statuses), ("types", types), ("subtypes", subtypes), ("items", items)):
            self.table(name, rows)

    def companies(self) -> None:
        companies: list[Record] = []
        contacts: list[Record] = []
        configurations: list[Record] = []
        agreements: list[Record] = []
        sites: list[Record] = []
        people = iter(text.PEOPLE * 3)
        self.company_setup: list[tuple] = []
        for company_id, (identifier, name, city, state, zip_code, phone) in enumerate(text.COMPANIES, 1):
            owner = company_id == 1
            domain = f"{identifier.lower()}.example"
            # One site per company, its main one: the company's own address is that site's (ConnectWise shows the
            # default site's address on the company).
            sites.append({"id": company_id, "name": "Main"})
            self.table("sites", sites)
            companies.append(
                {
                    "id": company_id,
                    "identifier": identifier,
                    "name": name,
                    "status": self.named("companyStatuses", COMPANY_STATUS.get(identifier, "Active")),
                    "addressLine1": f"{100 + 17 * company_id} Main Street",
                    "city": city,
                    "state": state,
                    "zip": zip_code,
                    "country": self.ref("countries", 1),
                    "phoneNumber": phone,
                    "website": f"https://www.{domain}",
                    "territory": self.ref("locations", 1),
                    "accountNumber": f"C{company_id:05d}",
                    "dateAcquired": iso(self.now - (1200 - 60 * company_id) * _DAY),
                    "leadFlag": False,
                    "unsubscribeFlag": False,
                    "deletedFlag": False,
                    "mobileGuid": self.guid(),
                    "isVendorFlag": "Vendor" in COMPANY_TYPES.get(identifier, ()),
                    "types": [self.named("companyTypes", t) for t in COMPANY_TYPES.get(identifier, ("Client",))],
                    "site": self.ref("sites", company_id),
                    "_info": self.info(300),
                }
            )
            self.table("companies", companies)
            company_ref = self.ref("companies", company_id)
            contact_ids = []
            for position in range(2 if owner else 3 + company_id % 3):
                first, last = next(people)
                contact_id = len(contacts) + 1
                email = f"{_ascii(first)}.{_ascii(last)}@{domain}"
                contacts.append(
                    {
                        "id": contact_id,
                        "firstName": first,
                        "lastName": last,
                        "company": company_ref,
                        "addressLine1": companies[-1]["addressLine1"],
                        "city": city,
                        "state": state,
                        "zip": zip_code,
                        "country": self.ref("countries", 1),
                        "inactiveFlag": (identifier, last) in INACTIVE_CONTACTS,
                        "title": ("Office Manager", "Owner", "Bookkeeper", "Receptionist", "Engineer")[position % 5],
                        "disablePortalLoginFlag": False,
                        "unsubscribeFlag": False,
                        "defaultPhoneType": "Direct",
                        "defaultPhoneNbr": f"{phone[:8]}{1000 + contact_id:04d}"[:12],
                        "defaultFlag": position == 0,
                        "defaultBillingFlag": position == 0,
                        "mobileGuid": self.guid(),
                        "communicationItems": [
                            {
                                "id": 2 * contact_id - 1,
                                "type": {"id": 1, "name": "Email"},
                                "value": email,
                                "defaultFlag": True,
                                "domain": "@" + domain,
                                "communicationType": "Email",
                            },
                            {
                                "id": 2 * contact_id,
                                "type": {"id": 2, "name": "Direct"},
                                "value": f"{phone[:8]}{1000 + contact_id:04d}"[:12],
                                "defaultFlag": True,
                                "communicationType": "Phone",
                            },
                        ],
                        "types": [],
                        "_info": self.info(250),
                    }
                )
                contact_ids.append(contact_id)
            self.table("contacts", contacts)
            companies[-1]["defaultContact"] = self.ref("contacts", contact_ids[0])
            devices: list[str] = []
            device_ids = {}
            for kind, type_id in (("DC01", 1), ("FS01", 1), ("FW01", 3), ("WS-014", 2), ("WS-027", 2), ("PRN01", 4)):
                if owner and type_id == 4:
                    continue
                configuration_id = len(configurations) + 1
                device = f"{identifier[:8].upper()}-{kind}"
                configurations.append(
                    {
                        "id": configuration_id,
                        "name": device,
                        "type": self.ref("configurationTypes", type_id),
                        "status": self.ref("configurationStatuses", 1),
                        "company": company_ref,
                        "contact": self.ref("contacts", contact_ids[0]),
                        "deviceIdentifier": f"DEV-{configuration_id:05d}",
                        "serialNumber": f"SN{self.rng.getrandbits(40):010X}",
                        "modelNumber": (
                            "PowerEdge R650",
                            "PowerEdge T150",
                            "FortiGate 60F",
                            "OptiPlex 7010",
                            "OptiPlex 7010",
                            "LaserJet M404",
                        )[("DC01", "FS01", "FW01", "WS-014", "WS-027", "PRN01").index(kind)],
                        "installationDate": iso(self.now - (700 - configuration_id) * _DAY),
                        "warrantyExpirationDate": iso(self.now + (200 + 11 * configuration_id) * _DAY),
                        "ipAddress": f"10.{company_id}.0.{10 + len(devices)}",
                        "osType": "Windows Server 2022"
                        if type_id == 1
                        else ("FortiOS 7.4" if type_id == 3 else "Windows 11 Pro"),
                        "billFlag": False,
                        "activeFlag": True,
                        "mobileGuid": self.guid(),
                        "needsRenewalFlag": False,
                        "_info": self.info(200),
                    }
                )
                devices.append(device)
                device_ids[kind] = configuration_id
            self.table("configurations", configurations)
            planned = (
                ()
                if owner
                else AGREEMENTS.get(identifier, ((AGREEMENT_NAMES[company_id % 3], 1 + company_id % 3, "active"),))
            )
            agreement_ref = None
            for agreement_name, type_id, state in planned:
                agreements.append(
                    self.agreement(len(agreements) + 1, agreement_name, type_id, state, company_ref, contact_ids[0])
                )
                self.table("agreements", agreements)
                if agreement_ref is None and state in ("active", "open"):  # the agreement its tickets are under
                    agreement_ref = self.ref("agreements", len(agreements))
            contact_info = [(self.ref("contacts", c), contacts[c - 1]) for c in contact_ids]
            self.company_setup.append(
                (
                    company_ref,
                    companies[-1],
                    contact_info,
                    devices,
                    agreement_ref,
                    list(device_ids.values()),
                    device_ids,
                )
            )

    def agreement(
        self, agreement_id: int, name: str, type_id: int, state: str, company_ref: Record, contact_id: int
    ) -> Record:
        agreement: Record = {
            "id": agreement_id,
            "name": name,
            "type": self.ref("agreementTypes", type_id),
            "company": company_ref,
            "contact": self.ref("contacts", contact_id),
            "startDate": iso(self.now - (730 if state == "expired" else 365) * _DAY),
            "noEndingDateFlag": state == "open",
            "cancelledFlag": state == "cancelled",
            "sla": self.named("slas", "Premium SLA" if type_id == 1 else "Standard SLA"),
            "applicationUnits": "Hours" if type_id == 2 else "Amount",
            "applicationLimit": 20.0 if type_id == 2 else 0.0,
            "applicationUnlimitedFlag": type_id == 1,
            "billAmount": 1500.0 if type_id == 1 else 0.0,
            "billTime": "Billable",
            "billExpenses": "Billable",
            "billProducts": "Billable",
            "agreementStatus": {"expired": "Expired", "cancelled": "Cancelled"}.get(state, "Active"),
            "_info": self.info(365),
        }
        if state != "open":
            agreement["endDate"] = iso(self.now + (-60 if state == "expired" else 3 * 365) * _DAY)
        if state == "cancelled":
            agreement["dateCancelled"] = iso(self.now - 30 * _DAY)
            agreement["reasonCancelled"] = "Moved to block time"
        return agreement

    def callbacks(self) -> None:
        self.table(
            "callbacks",
            [
                {
                    "id": 1,
                    "description": "Example ticket hook (inactive)",
                    "url": "https://hooks.example.invalid/cw",
                    "objectId": 1,
                    "type": "ticket",
                    "level": "owner",
                    "memberId": self.member_ids[API_MEMBER_IDENTIFIER],
                    "payloadVersion": "3.0.0",
                    "inactiveFlag": True,
                    "isSoapCallbackFlag": False,
                    "isSelfSuppressedFlag": False,
                    "connectWiseID": self.guid(),
                    "_info": dict(self.base_info),
                }
            ],
        )

    # --- tickets ---------------------------------------------------------------------------------------

    def tickets(self, count: int) -> None:
        tickets = _TicketSeeder(self).build(count)
        self.store.set_table("tickets", tickets.rows)
        self.store.set_lazy("notes", tickets.notes_loader())
        self.store.set_lazy("timeEntries", tickets.time_loader())


class _TicketSeeder:
    """The hot loop. Choices use `random()` and index arithmetic; reference objects are shared, not copied."""

    def __init__(self, seeder: _Seeder) -> None:
        self.seeder = seeder
        self.now = seeder.now
        self.store = seeder.store
        self.rows: dict[int, Record] = {}
        self.note_plans: list[tuple] = []
        self.time_plans: list[tuple] = []

    def build(self, count: int) -> _TicketSeeder:
        seeder, store, rand = self.seeder, self.store, self.seeder.rand
        now = self.now
        statuses = store["statuses"]
        escalation = {status_id: status["escalationStatus"] for status_id, status in statuses.items()}
        boards = []
        for board_id, first_type, end_type, issues, share, subtype_ids, item_ids in seeder.board_setup:
            if not share:
                continue
            board_statuses = [s for s in statuses.values() if s["board"]["id"] == board_id and not s["inactive"]]
            open_refs = [store.ref("statuses", s["id"]) for s in board_statuses if not s["closedStatus"]]
            closed_statuses = [s for s in board_statuses if s["closedStatus"]]
            issue_refs = [
                (
                    summary,
                    store.ref("subtypes", subtype_ids[subtype]),
                    store.ref("items", item_ids[item]) if item else None,
                    _attached_kind(summary, subtype, item),
                )
                for summary, subtype, item in issues
            ]
            boards.append(
                (
                    share,
                    store.ref("boards", board_id),
                    open_refs,
                    [store.ref("statuses", s["id"]) for s in closed_statuses],
                    [store.ref("types", t) for t in range(first_type, end_type)],
                    issue_refs,
                )
            )
        priorities = [
            (share, store.ref("priorities", i), respond, plan, resolve)
            for i, (*_n, respond, plan, resolve, share) in enumerate(PRIORITIES, 1)
        ]
        customers = seeder.company_setup[1:]
        sources = [store.ref("sources", i) for i in range(1, len(SOURCES) + 1)]
        teams = [store.ref("teams", i) for i in (1, 2, 3)]
        technicians = seeder.technicians
        service_locations = [store.ref("serviceLocations", i) for i in (1, 1, 1, 2)]
        location, department = store.ref("locations", 1), store.ref("departments", 1)
        sla, currency = store.ref("slas", 1), store.ref("currencies", 1)
        # Seeded custom fields carry no value: the schema types `value` as an object (.NET's `object`), real
        # ConnectWise sends strings, and a client generated from the schema would choke on either choice.
        no_custom_value = [
            {"id": 1, "caption": "Client Reference", "type": "Text", "entryMethod": "EntryField", "numberOfDecimals": 0}
        ]
        ticket_configurations = store.ticket_configurations
        start = now - _HISTORY_DAYS * _DAY
        step = _HISTORY_DAYS * _DAY / max(count, 1)
        ticket_id = FIRST_TICKET_ID - 1
        for i in range(count):
            ticket_id += 2 if rand() < 0.03 else 1  # a few ids are gone, as deleted tickets leave gaps
            entered = start + (i + 0.9 * rand()) * step
            age_hours = (now - entered) / 3600

            roll = rand()
            for board in boards:
                roll -= board[0]
                if roll <= 0:
                    break
            _share, board_ref, open_refs, closed_refs, type_refs, issue_refs = board
            roll = rand()
            for priority in priorities:
                roll -= priority[0]
                if roll <= 0:
                    break
            _share, priority_ref, respond_h, plan_h, resolve_h = priority
            company_ref, company, contacts, devices, agreement_ref, device_ids, kind_ids = customers[
                int(rand() * len(customers))
            ]
            contact_ref, contact = contacts[int(rand() * len(contacts))]
            summary_template, subtype_ref, item_ref, attached_kind = issue_refs[int(rand() * len(issue_refs))]
            device = int(rand() * len(devices))
            summary = summary_template.replace("{user}", contact["firstName"]).replace("{device}", devices[device])
            if attached_kind is not None:  # the device the ticket is about is attached to it
                attached = device_ids[device] if attached_kind == "{device}" else kind_ids.get(attached_kind)
                if attached is not None:
                    ticket_configurations[ticket_id] = [attached]

            closed = rand() < min(0.8, age_hours / (resolve_h * 30))
            if closed:
                status_ref = closed_refs[int(rand() * len(closed_refs))]
                is_new = False
            else:
                status_ref = (
                    open_refs[0] if rand() < min(0.5, 12 / (age_hours + 1)) else open_refs[int(rand() * len(open_refs))]
                )
                is_new = status_ref is open_refs[0]
            owner = None if is_new else technicians[int(rand() * len(technicians))]
            entered_iso = iso(entered)
            ticket: Record = {
                "id": ticket_id,
                "summary": summary,
                "recordType": "ServiceTicket",
                "board": board_ref,
                "status": status_ref,
                "company": company_ref,
                "siteName": "Main",
                "addressLine1": company["addressLine1"],
                "city": company["city"],
                "stateIdentifier": company["state"],
                "zip": company["zip"],
                "contact": contact_ref,
                "contactName": contact_ref["name"],
                "contactPhoneNumber": contact["defaultPhoneNbr"],
                "contactEmailAddress": contact["communicationItems"][0]["value"],
                "type": type_refs[int(rand() * len(type_refs))],
                "subType": subtype_ref,
                "team": teams[int(rand() * 3)],
                "priority": priority_ref,
                "serviceLocation": service_locations[int(rand() * 4)],
                "source": sources[int(rand() * len(sources))],
                "severity": _SEVERITY_IMPACT[int(rand() * 4)],
                "impact": _SEVERITY_IMPACT[int(rand() * 4)],
                "allowAllClientsPortalView": False,
                "customerUpdatedFlag": False,
                "automaticEmailContactFlag": True,
                "automaticEmailResourceFlag": True,
                "automaticEmailCcFlag": False,
                "closedFlag": closed,
                "approved": True,
                "billingMethod": "ActualRates",
                "subBillingMethod": "ActualRates",
                "hasChildTicket": False,
                "hasMergedChildTicketFlag": False,
                "billTime": "Billable",
                "billExpenses": "Billable",
                "billProducts": "Billable",
                "location": location,
                "department": department,
                "sla": sla,
                "requestForChangeFlag": False,
                "currency": currency,
                "customFields": no_custom_value,
            }
            if item_ref is not None:
                ticket["item"] = item_ref
            if agreement_ref is not None:
                ticket["agreement"] = agreement_ref
            if owner is not None:
                ticket["owner"] = owner
            last = entered + 600
            responded = None if is_new else entered + rand() * respond_h * 3600 * 1.4
            if closed:
                assert owner is not None  # a closed ticket is not new, so it has an owner
                closed_at = min(entered + (0.2 + rand() * 1.3) * resolve_h * 3600, now - 60)
            if responded is not None:
                assert owner is not None  # only a new ticket has no owner
                responded = min(responded, closed_at if closed else now - 60)  # never after its close or now
                ticket["dateResponded"] = iso(responded)
                ticket["respondedBy"] = owner["identifier"]
                ticket["respondMinutes"] = int((responded - entered) / 60)
                ticket["respondedHours"] = round((responded - entered) / 3600, 2)
                last = responded
            if closed:
                assert owner is not None
                last = max(last, closed_at)
                ticket["closedDate"] = iso(closed_at)
                ticket["closedBy"] = owner["identifier"]
                ticket["dateResolved"] = ticket["closedDate"]
                ticket["resolvedBy"] = owner["identifier"]
                ticket["resolveMinutes"] = int((closed_at - entered) / 60)
                ticket["resolutionHours"] = round((closed_at - entered) / 3600, 2)
                ticket["isInSla"] = closed_at - entered <= resolve_h * 3600
                ticket["slaStatus"] = "Resolved"
            else:
                ticket["requiredDate"] = iso(entered + resolve_h * 3600)
                self.sla(ticket, entered, responded, (respond_h, plan_h, resolve_h), escalation[status_ref["id"]])
                last = min(now - 60, last + rand() * 86400)

            hours = 0.0
            if owner is not None:
                at = entered + 1800
                for _ in range(1 + int(rand() * 2.2)):
                    spent = _HOURS[int(rand() * len(_HOURS))]
                    self.time_plans.append(
                        (
                            ticket_id,
                            owner,
                            at,
                            spent,
                            int(rand() * 3),
                            int(rand() * 5),
                            int(rand() * len(text.DISCUSSION_LINES)),
                        )
                    )
                    hours += spent
                    at += spent * 3600 + rand() * 7200
                    last = max(last, min(at, now - 60))
            ticket["actualHours"] = hours
            self.plan_notes(ticket_id, entered, last, contact_ref, owner, closed)
            ticket["mobileGuid"] = str(uuid.UUID(int=int(rand() * (1 << 53)) << 70 | ticket_id, version=4))
            entered_by = "Email Connector" if rand() < 0.5 else "dispatch"
            ticket["_info"] = {
                "lastUpdated": iso(last),
                "updatedBy": owner["identifier"] if owner else entered_by,
                "dateEntered": entered_iso,
                "enteredBy": entered_by,
                **store.info_links("tickets", ticket_id),
            }
            self.rows[ticket_id] = ticket
        return self

    def sla(
        self,
        ticket: Record,
        entered: float,
        responded: float | None,
        hours: tuple[float, float, float],
        escalation: str,
    ) -> None:
        """An open ticket's SLA as ConnectWise holds it: the deadline it computed for each milestone (here
        plain hours from entry: the sandbox has no business-hours calendar), the plan if one was given, and
        the next milestone in `slaStatus`. Choices are by ticket id, not `rand()`, so the rest of the seed
        is the same with or without them."""
        ticket_id = ticket["id"]
        respond_h, plan_h, resolve_h = hours
        paused = escalation == "NoEscalation"  # a waiting status: the clock stands still
        planned = responded is not None and (escalation == "ResolutionPlan" or (paused and ticket_id % 2 == 0))
        respond_goal = entered + respond_h * 3600
        plan_goal, resolution_goal = entered + plan_h * 3600, entered + resolve_h * 3600
        if planned:
            assert responded is not None
            plan_at = min(responded + 600 + (ticket_id * 37 % 100) / 100 * plan_h * 3600, self.now - 60)
            ticket["dateResplan"] = iso(plan_at)
            ticket["resplanBy"] = ticket["respondedBy"]
            ticket["resPlanMinutes"] = int((plan_at - entered) / 60)
            ticket["resplanHours"] = round((plan_at - entered) / 3600, 2)
        if responded is not None and not paused and ticket_id % 4 == 0:
            # One in four responded tickets waited on the customer earlier: the wait pushed its later deadlines
            # back, so that at the seed's now some fall due within hours, as on a real desk.
            target = self.now + _RESUMED_DUE_MINUTES[ticket_id // 4 % len(_RESUMED_DUE_MINUTES)] * 60
            waited = int((target - (resolution_goal if planned else plan_goal)) // 60)
            if 0 < waited * 60 <= self.now - responded:
                ticket["minutesWaiting"] = waited
                plan_goal += waited * 60
                resolution_goal += waited * 60
        ticket["respondByGoalUTC"] = iso(respond_goal)
        ticket["resplanGoalUTC"] = iso(plan_goal)
        ticket["resolutionGoalUTC"] = iso(resolution_goal)
        if responded is None:
            milestone, goal = "Respond by ", respond_goal
        elif not planned:
            milestone, goal = "Plan by ", plan_goal
        else:
            milestone, goal = "Resolve by ", resolution_goal
        ticket["isInSla"] = goal >= self.now
        ticket["slaStatus"] = "Waiting" if paused else milestone + iso(goal)

    def plan_notes(
        self, ticket_id: int, entered: float, last: float, contact_ref: Record, owner: Record | None, closed: bool
    ) -> None:
        """Notes as (ticket id, kind, text index, author, timestamp); `notes_loader` writes the text."""
        rand = self.seeder.rand
        plans = self.note_plans
        plans.append((ticket_id, "issue", int(rand() * 1000), contact_ref, entered))
        if ticket_id % 37 == 0:
            plans.append((ticket_id, "injection", ticket_id // 37, contact_ref, entered + 900))
        if owner is not None:
            plans.append((ticket_id, "discussion", int(rand() * 1000), owner, entered + 1200))
            if rand() < 0.5:
                plans.append((ticket_id, "internal", int(rand() * 1000), owner, entered + 1500))
        if closed:
            plans.append((ticket_id, "resolution", int(rand() * 1000), owner, last))

    def notes_loader(self) -> Callable[[], dict[int, Record]]:
        plans, store = self.note_plans, self.store

        def load() -> dict[int, Record]:
            rows: dict[int, Record] = {}
            tickets = store["tickets"]
            for note_id, (ticket_id, kind, pick, author, at) in enumerate(plans, 1):
                ticket = tickets.get(ticket_id)
                user = ticket["contact"]["name"].split(" ")[0] if ticket and "contact" in ticket else "there"
                by_contact = kind in ("issue", "injection")
                note: Record = {
                    "id": note_id,
                    "ticketId": ticket_id,
                    "text": _note_text(kind, pick, user, ticket),
                    "detailDescriptionFlag": kind != "internal" and kind != "resolution",
                    "internalAnalysisFlag": kind == "internal",
                    "resolutionFlag": kind == "resolution",
                    "issueFlag": kind == "issue",
                    "customerUpdatedFlag": by_contact,
                    "processNotifications": False,
                    "dateCreated": iso(at),
                    "createdBy": "Email Connector" if by_contact else author["identifier"],
                    "internalFlag": kind == "internal",
                    "externalFlag": kind != "internal",
                }
                note["contact" if by_contact else "member"] = author
                note["_info"] = {"lastUpdated": note["dateCreated"], "updatedBy": note["createdBy"]}
                rows[note_id] = note
            return rows

        return load

    def time_loader(self) -> Callable[[], dict[int, Record]]:
        plans, store, now = self.time_plans, self.store, self.now

        def load() -> dict[int, Record]:
            rows: dict[int, Record] = {}
            tickets = store["tickets"]
            work_types = [store.ref("workTypes", i) for i in (1, 1, 2)]
            work_roles = store.ref("workRoles", 2)
            # Agreements that prepay time (a monthly amount, a block of hours) take their tickets' time when it
            # is billed; break-fix time is billed as worked.
            prepaid = {
                a["id"] for a in store["agreements"].values() if a.get("billAmount") or a.get("applicationLimit")
            }
            this_week = _week_start(now)
            for entry_id, (ticket_id, member, at, spent, work_type, billable, line) in enumerate(plans, 1):
                ticket = tickets[ticket_id]
                end = at + spent * 3600
                rows[entry_id] = {
                    "id": entry_id,
                    "company": ticket["company"],
                    "companyType": "Client",
                    "chargeToId": ticket_id,
                    "chargeToType": "ServiceTicket",
                    "member": member,
                    "locationId": 1,
                    "businessUnitId": 1,
                    "workType": work_types[work_type],
                    "workRole": work_roles,
                    "timeStart": iso(at),
                    "timeEnd": iso(end),
                    "hoursDeduct": 0.0,
                    "actualHours": spent,
                    "billableOption": _BILLABLE[billable],
                    "notes": text.DISCUSSION_LINES[line]
                    .replace("{user}", ticket["contact"]["name"].split(" ")[0])
                    .replace("{n}", str(4000 + entry_id)),
                    "addToDetailDescriptionFlag": False,
                    "addToInternalAnalysisFlag": True,
                    "addToResolutionFlag": False,
                    "emailResourceFlag": False,
                    "emailContactFlag": False,
                    "emailCcFlag": False,
                    "hoursBilled": spent,
                    "invoiceHours": spent,
                    "enteredBy": member["identifier"],
                    "dateEntered": iso(end),
                    "status": _time_sheet_status(
                        entry_id, at, ticket.get("agreement", {}).get("id") in prepaid, this_week
                    ),
                    "ticket": store.ref("tickets", ticket_id),
                    "ticketBoard": ticket["board"]["name"],
                    "ticketStatus": ticket["status"]["name"],
                    "_info": {"lastUpdated": iso(end), "updatedBy": member["identifier"]},
                }
            return rows

        return load


def _week_start(now: float) -> float:
    """The start of the week `now` falls in: time sheets run Monday to Sunday (UTC here)."""
    return now - now % _DAY - time.gmtime(now).tm_wday * _DAY


def _time_sheet_status(entry_id: int, start: float, prepaid: bool, this_week: float) -> str:
    """Where a seeded time entry is in ConnectWise's time sheet workflow, by the week it was worked (`this_week`:
    when the week of the seed's now began)."""
    weeks_ago = 0 if start >= this_week else int((this_week - start) // (7 * _DAY)) + 1
    if weeks_ago < len(_TIME_SHEET_STAGES):
        stage = _TIME_SHEET_STAGES[weeks_ago]
    else:
        stage = "BilledAgreement" if prepaid else "Billed"
    return "Rejected" if stage != "Open" and entry_id % _REJECTED_EVERY == 0 else stage  # sent back once submitted


# Which of its company's devices a ticket is about, by the words of its issue (see Seeder.companies).
_ATTACHED_BY_ITEM = {"Server": "FS01", "File Share": "FS01", "Firewall": "FW01", "VPN": "FW01"}


def _attached_kind(summary: str, subtype: str, item: str | None) -> str | None:
    """The configuration a ticket with this issue has attached: "{device}" for the one its summary names,
    else a device kind, else None."""
    if "{device}" in summary:
        return "{device}"
    if subtype == "Printer":
        return "PRN01"
    return _ATTACHED_BY_ITEM.get(item or "")


def _note_text(kind: str, pick: int, user: str, ticket: Record | None) -> str:
    if kind == "injection":
        return text.INJECTION_NOTES[pick % len(text.INJECTION_NOTES)]
    if kind == "discussion":
        return (
            text.DISCUSSION_LINES[pick % len(text.DISCUSSION_LINES)].replace("{user}", user).replace("{n}", str(pick))
        )
    if kind == "internal":
        return text.INTERNAL_LINES[pick % len(text.INTERNAL_LINES)]
    if kind == "resolution":
        return text.RESOLUTION_LINES[pick % len(text.RESOLUTION_LINES)]
    summary = ticket["summary"] if ticket else "my issue"
    body = f"Hi,\n\n{summary}. It started this morning and is stopping me from working.\n\nThanks,\n{user}"
    if pick % 23 == 0:  # a long description: the customer pasted a log
        body += "\n\n--- log ---\n" + "\n".join(text.LOG_LINES * 12)
    return body
