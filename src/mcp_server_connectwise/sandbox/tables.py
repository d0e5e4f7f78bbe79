"""Each table of the sandbox, described once: what ConnectWise calls it, where it is served, what its parent is,
how its records are referenced, and the declarative rules of its writes.

The store derives its parent indexes and reference objects from these, the routes their paths and methods, the
writer its validation and defaults. What is genuinely code (a ticket's status on its board, a time entry's
hours) stays in writes.py, keyed by table name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_server_connectwise.sandbox.store import Record

_BILL_OPTIONS = ("Billable", "DoNotBill", "NoCharge", "NoDefault")
# The chargeToType of a time entry whose chargeToId is a ticket.
TICKET_CHARGE_TYPES = ("ServiceTicket", "ProjectTicket")


@dataclass(frozen=True)
class Parent:
    """The record a child record belongs to: a note's ticket, a status's board."""

    table: str
    field: str  # the child's field holding the parent: its id, or a reference to it
    # Served under the parent's item (service/tickets/{id}/notes): the field comes from the URL, never a body.
    in_path: bool = True
    when: tuple[str, tuple[str, ...]] | None = None  # (field, values): only such records have a parent
    deleted_with_parent: bool = False
    updates_parent: bool = False  # a new child updates its parent's _info (lastUpdated, updatedBy)

    def id_of(self, record: Record) -> Any:
        """The parent's id, or None for a record without one."""
        if self.when is not None and record.get(self.when[0]) not in self.when[1]:
            return None
        value = record.get(self.field)
        return value.get("id") if isinstance(value, dict) else value


@dataclass(frozen=True)
class Table:
    """How ConnectWise names, serves and references the records of one table, and how writes treat them."""

    name: str  # key in the store
    model: str  # schema name, key of MODEL_FIELDS ("" for tables only ever referenced)
    resource: str  # `resource` in validation errors, and "<resource> object is invalid"
    label: str  # 404 wording: "<label> <id> not found"
    # The collection's path under the API root ("" when not served); a child's is under its parent's item.
    path: str = ""
    parent: Parent | None = None
    writable: bool = True  # POST on the collection, PUT and PATCH on an item
    deletable: bool = True
    # References to its records.
    ref_fields: tuple[tuple[str, str], ...] = (("name", "name"),)  # (key in reference, key in record)
    natural_keys: tuple[str, ...] = ("name",)  # what a reference may name a record by instead of its id
    person: bool = False  # the reference's name is "firstName lastName"
    # Its records' fields.
    # Reference field -> table, where the field's name alone (_REFERENCES) does not say.
    references: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    # What every update must carry: a PUT in its body, a PATCH as one of its operations.
    required_on_update: tuple[str, ...] = ()
    unique: tuple[str, ...] = ()  # another record with the same value is an ObjectExists error
    max_lengths: dict[str, int] = field(default_factory=dict)
    # From the schemas. .NET reads enums case-insensitively; the record keeps the canonical spelling.
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)  # for a field a write leaves out, or a PATCH removes
    create_defaults: dict[str, Any] = field(default_factory=dict)  # the same, for a POST only
    # field -> (table, key, value): a reference a write leaves out points at the record whose `key` is `value`.
    default_refs: dict[str, tuple[str, str, Any]] = field(default_factory=dict)
    order_field: str = ""  # [I] numbers a child among its siblings: a write that leaves it out puts it last
    computed: tuple[str, ...] = ()  # derived by the table's rules: a PATCH of them changes nothing
    ignored_in_body: tuple[str, ...] = ()  # taken from no POST or PUT body
    info_entered: bool = True  # the record's _info has dateEntered and enteredBy
    info_links: tuple[str, ...] = ()  # child tables the record's _info links to, as "<table>_href"

    def collection(self, parent_id: object = None) -> str:
        """The collection's path under the API root, for the children of `parent_id` (a route's placeholder
        will do) if the table is served under its parent."""
        if self.parent is None or not self.parent.in_path:
            return self.path
        return f"{TABLES[self.parent.table].path}/{parent_id}/{self.path}"

    def reference(self, field_name: str) -> str | None:
        """The table a reference field points into, or None if the sandbox keeps it as given."""
        return self.references.get(field_name) or _REFERENCES.get(field_name)


_BOARD = Parent("boards", "board")  # of a board's statuses, types, subtypes and items
# [I] Except for tickets, notes, time entries and callbacks, the `defaults` are the sandbox's: ConnectWise's
# server-side defaults are not public. Flags are false unless the schema's meaning says otherwise
# (displayOnBoard, activeFlag), enums take their neutral value. What matters most is that the flags the
# sandbox's own rules read are always there (a status without `closedStatus` must still be a status).
TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "tickets",
            "Ticket",
            "ticket",
            "Ticket",
            "service/tickets",
            ref_fields=(("summary", "summary"),),
            natural_keys=(),
            required=("summary", "company", "board"),
            max_lengths={"summary": 100, "externalXRef": 100},
            references={
                "status": "statuses",
                "type": "types",
                "subType": "subtypes",
                "item": "items",
                "owner": "members",
            },
            enums={
                "recordType": ("ServiceTicket", "ProjectTicket", "ProjectIssue"),
                "severity": ("Low", "Medium", "High"),
                "impact": ("Low", "Medium", "High"),
                "billTime": _BILL_OPTIONS,
                "billExpenses": _BILL_OPTIONS,
                "billProducts": _BILL_OPTIONS,
            },
            defaults={
                "recordType": "ServiceTicket",
                "severity": "Medium",
                "impact": "Medium",
                "customerUpdatedFlag": False,
                "automaticEmailCcFlag": False,
                "approved": False,
                "hasChildTicket": False,
                "hasMergedChildTicketFlag": False,
                "requestForChangeFlag": False,
                "allowAllClientsPortalView": False,
                "automaticEmailContactFlag": True,
                "automaticEmailResourceFlag": True,
                "billTime": "NoDefault",
                "billExpenses": "NoDefault",
                "billProducts": "NoDefault",
            },
            default_refs={"priority": ("priorities", "defaultFlag", True)},
            computed=("actualHours", "closedDate", "closedBy"),
            # Accepted in a POST or PUT but never stored: options of the request (see Writer._initial_notes).
            ignored_in_body=(
                "initialDescription",
                "initialInternalAnalysis",
                "initialResolution",
                "processNotifications",
                "skipCallback",
                "initialDescriptionFrom",
                "contactEmailLookup",
            ),
            info_links=("notes", "timeEntries"),
        ),
        Table(
            "notes",
            "ServiceNote",
            "ticketNote",
            "Note",
            "notes",
            ref_fields=(),
            natural_keys=(),
            parent=Parent("tickets", "ticketId", deleted_with_parent=True, updates_parent=True),
            defaults={
                "detailDescriptionFlag": False,
                "internalAnalysisFlag": False,
                "resolutionFlag": False,
                "issueFlag": False,
                "customerUpdatedFlag": False,
            },
            # processNotifications is the sandbox's to set on a POST, whatever the body says.
            create_defaults={"processNotifications": True},
            ignored_in_body=("processNotifications",),
            info_entered=False,
        ),
        Table(
            "boards",
            "Board",
            "board",
            "Board",
            "service/boards",
            required=("name", "location", "department"),
            enums={"billTime": _BILL_OPTIONS, "billExpense": _BILL_OPTIONS, "billProduct": _BILL_OPTIONS},
            defaults={
                "inactiveFlag": False,
                "projectFlag": False,
                "timeEntryDiscussionFlag": False,
                "timeEntryInternalAnalysisFlag": False,
                "timeEntryResolutionFlag": False,
                "markFirstNoteIssueFlag": False,
                "billTime": "NoDefault",
                "billExpense": "NoDefault",
                "billProduct": "NoDefault",
            },
        ),
        Table(
            "statuses",
            "BoardStatus",
            "status",
            "Status",
            "statuses",
            parent=_BOARD,
            ref_fields=(("name", "name"), ("sort", "sortOrder")),
            required=("name",),
            enums={"escalationStatus": ("NotResponded", "Responded", "ResolutionPlan", "Resolved", "NoEscalation")},
            defaults={
                "displayOnBoard": True,
                "inactive": False,
                "closedStatus": False,
                "timeEntryNotAllowed": False,
                "roundRobinCatchall": False,
                "defaultFlag": False,
                "escalationStatus": "NoEscalation",
                "customerPortalFlag": False,
                "saveTimeAsNote": False,
            },
            order_field="sortOrder",
            info_entered=False,
        ),
        Table(
            "types",
            "BoardType",
            "type",
            "Type",
            "types",
            parent=_BOARD,
            writable=False,
            deletable=False,
            required=("name",),
            defaults={"defaultFlag": False, "inactiveFlag": False, "requestForChangeFlag": False},
        ),
        Table(
            "subtypes",
            "BoardSubType",
            "subType",
            "SubType",
            "subtypes",
            parent=_BOARD,
            writable=False,
            deletable=False,
            required=("name",),
            defaults={"inactiveFlag": False},
        ),
        Table(
            "items",
            "BoardItem",
            "item",
            "Item",
            "items",
            parent=_BOARD,
            writable=False,
            deletable=False,
            required=("name",),
            defaults={"inactiveFlag": False},
        ),
        Table(
            "priorities",
            "Priority",
            "priority",
            "Priority",
            "service/priorities",
            ref_fields=(("name", "name"), ("sort", "sortOrder"), ("level", "level")),
            required=("name", "color"),
            enums={
                "color": (
                    "Black",
                    "Blue",
                    "Cyan",
                    "Gray",
                    "Green",
                    "Lime",
                    "Orange",
                    "Pink",
                    "Purple",
                    "Red",
                    "White",
                    "Yellow",
                    "Custom",
                ),
                "level": ("Critical", "High", "Medium", "Low"),
            },
            defaults={"defaultFlag": False},
        ),
        Table(
            "sources",
            "Source",
            "source",
            "Source",
            "service/sources",
            required=("name",),
            defaults={"defaultFlag": False},
        ),
        Table(
            "timeEntries",
            "TimeEntry",
            "timeEntry",
            "TimeEntry",
            "time/entries",
            ref_fields=(),
            natural_keys=(),
            parent=Parent(
                "tickets",
                "chargeToId",
                in_path=False,
                when=("chargeToType", TICKET_CHARGE_TYPES),
                deleted_with_parent=True,
            ),
            required=("timeStart",),
            # [C] The schema: billableOption is "Required On Updates". [I] A PATCH must carry it itself.
            required_on_update=("billableOption",),
            references={"ticket": "tickets"},
            enums={
                "chargeToType": ("Company", "ServiceTicket", "ProjectTicket", "ChargeCode", "Activity"),
                "billableOption": _BILL_OPTIONS,
            },
            defaults={"hoursDeduct": 0.0, "billableOption": "Billable"},
            create_defaults={
                "status": "Open",
                "addToDetailDescriptionFlag": False,
                "addToInternalAnalysisFlag": False,
                "addToResolutionFlag": False,
                "emailResourceFlag": False,
                "emailContactFlag": False,
                "emailCcFlag": False,
            },
            info_entered=False,
        ),
        Table(
            "workTypes",
            "WorkType",
            "workType",
            "WorkType",
            "time/workTypes",
            required=("name", "billTime", "rateType", "rate"),
            defaults={
                "inactiveFlag": False,
                "overallDefaultFlag": False,
                "activityDefaultFlag": False,
                "utilizationFlag": False,
            },
        ),
        Table(
            "workRoles",
            "WorkRole",
            "workRole",
            "WorkRole",
            "time/workRoles",
            required=("name",),
            defaults={"inactiveFlag": False},
        ),
        Table(
            "companies",
            "Company",
            "company",
            "Company",
            "company/companies",
            ref_fields=(("identifier", "identifier"), ("name", "name")),
            natural_keys=("identifier", "name"),
            required=("identifier", "name"),
            unique=("identifier",),
            references={"status": "companyStatuses"},
            defaults={"leadFlag": False, "unsubscribeFlag": False, "deletedFlag": False, "isVendorFlag": False},
            default_refs={"status": ("companyStatuses", "name", "Active")},
        ),
        Table(
            "contacts",
            "Contact",
            "contact",
            "Contact",
            "company/contacts",
            natural_keys=(),
            required=("firstName",),
            person=True,
            defaults={
                "inactiveFlag": False,
                "disablePortalLoginFlag": False,
                "unsubscribeFlag": False,
                "defaultFlag": False,
                "defaultBillingFlag": False,
            },
        ),
        Table(
            "configurations",
            "Configuration",
            "configuration",
            "Configuration",
            "company/configurations",
            required=("name", "type", "company"),
            # The schema's (Configuration.json); [I] the others (manufacturer's name) are not public.
            max_lengths={
                "name": 100,
                "deviceIdentifier": 100,
                "serialNumber": 250,
                "modelNumber": 50,
                "tagNumber": 50,
                "macAddress": 25,
                "lastLoginName": 100,
                "ipAddress": 50,
                "defaultGateway": 50,
                "osType": 250,
                "osInfo": 250,
            },
            references={
                "type": "configurationTypes",
                "status": "configurationStatuses",
                "installedBy": "members",
                "vendor": "companies",
            },
            defaults={"activeFlag": True, "billFlag": False, "needsRenewalFlag": False},
            # [I] A configuration created without a status gets the default one.
            default_refs={"status": ("configurationStatuses", "defaultFlag", True)},
        ),
        # [I] Read-only here: setting up types and statuses is an administrator's job, not an integration's.
        Table(
            "configurationTypes",
            "ConfigurationType",
            "type",
            "ConfigurationType",
            "company/configurations/types",
            writable=False,
            deletable=False,
            required=("name",),
            defaults={"inactiveFlag": False, "systemFlag": False},
        ),
        Table(
            "configurationStatuses",
            "ConfigurationStatus",
            "status",
            "ConfigurationStatus",
            "company/configurations/statuses",
            writable=False,
            deletable=False,
            # A status is named by its description; its references call that `name`, as every reference does.
            ref_fields=(("name", "description"),),
            natural_keys=("description",),
            required=("description",),
            defaults={"closedFlag": False, "defaultFlag": False},
        ),
        Table(
            "agreements",
            "Agreement",
            "agreement",
            "Agreement",
            "finance/agreements",
            required=("name", "type", "company", "contact"),
            references={
                "type": "agreementTypes",
                "billToContact": "contacts",
                "shipToCompany": "companies",
                "shipToContact": "contacts",
                "subContractCompany": "companies",
                "subContractContact": "contacts",
            },
            defaults={"noEndingDateFlag": False, "cancelledFlag": False},
        ),
        Table(
            "members",
            "Member",
            "member",
            "Member",
            "system/members",
            deletable=False,
            ref_fields=(("identifier", "identifier"), ("name", "name")),
            natural_keys=("identifier",),
            required=(
                "identifier",
                "firstName",
                "lastName",
                "licenseClass",
                "hireDate",
                "defaultEmail",
                "defaultPhone",
                "securityRole",
            ),
            person=True,
            unique=("identifier",),
            defaults={"inactiveFlag": False, "disableOnlineFlag": False, "adminFlag": False},
        ),
        Table(
            "callbacks",
            "CallbackEntry",
            "callbackEntry",
            "Callback",
            "system/callbacks",
            ref_fields=(),
            natural_keys=(),
            required=("url", "objectId", "type", "level"),
            create_defaults={
                "payloadVersion": "3.0.0",
                "inactiveFlag": False,
                "isSoapCallbackFlag": False,
                "isSelfSuppressedFlag": False,
            },
            info_entered=False,
        ),
        # Referenced by the records above but not served by the sandbox.
        Table("teams", "", "team", "Team"),
        Table("locations", "", "location", "Location"),
        Table("departments", "", "department", "Department"),
        Table("serviceLocations", "", "serviceLocation", "ServiceLocation"),
        Table("slas", "", "sla", "SLA"),
        Table(
            "currencies",
            "",
            "currency",
            "Currency",
            ref_fields=(("symbol", "symbol"), ("currencyCode", "currencyCode"), ("name", "name")),
            natural_keys=("currencyCode", "name"),
        ),
        Table("countries", "", "country", "Country"),
        Table("sites", "", "site", "Site"),  # each company's main site, referenced by the company
        Table("companyStatuses", "", "status", "CompanyStatus"),
        Table("companyTypes", "", "type", "CompanyType"),
        Table("agreementTypes", "", "type", "AgreementType"),
        Table("securityRoles", "", "securityRole", "SecurityRole"),
    )
}

# Which table a reference field points into by its name alone, for any table (a table's `references` first).
_REFERENCES = {
    "board": "boards",
    "company": "companies",
    "contact": "contacts",
    "member": "members",
    "priority": "priorities",
    "source": "sources",
    "agreement": "agreements",
    "workType": "workTypes",
    "workRole": "workRoles",
    "team": "teams",
    "location": "locations",
    "department": "departments",
    "serviceLocation": "serviceLocations",
    "sla": "slas",
    "currency": "currencies",
    "country": "countries",
    "securityRole": "securityRoles",
    "defaultContact": "contacts",
    "territoryManager": "members",
    "reportsTo": "members",
    "timeApprover": "members",
    "expenseApprover": "members",
    "dispatchMember": "members",
    "serviceManagerMember": "members",
    "dutyManagerMember": "members",
    "oncallMember": "members",
    "serviceDefaultBoard": "boards",
    "defaultLocation": "locations",
    "defaultDepartment": "departments",
    "parentCompany": "companies",
    "billToCompany": "companies",
    "managerContact": "contacts",
    "assistantContact": "contacts",
}
