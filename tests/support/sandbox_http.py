"""A plain HTTP client onto an in-process sandbox, as any ConnectWise client would talk to it (Basic auth,
clientId), for the sandbox's own tests."""

from __future__ import annotations

import httpx2
from starlette.applications import Starlette

from mcp_server_connectwise.sandbox import SANDBOX_BASE_URL

AUTH = ("sandbox+sandbox-public", "sandbox-private")


def sandbox_http(app: Starlette, client_id: str = "test") -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url=SANDBOX_BASE_URL, auth=AUTH, headers={"clientId": client_id}
    )


# The least each POST endpoint needs: exactly the required fields (ConnectWise fills in the rest).
MINIMAL_POSTS = {
    "/service/tickets": {"summary": "Minimal", "company": {"id": 2}, "board": {"id": 1}},
    "/service/tickets/{ticket}/notes": {"text": "Minimal", "internalAnalysisFlag": True},
    "/service/boards": {"name": "Minimal Board", "location": {"id": 1}, "department": {"id": 1}},
    "/service/boards/{board}/statuses": {"name": "Minimal Status"},
    "/service/priorities": {"name": "Minimal Priority", "color": "Blue"},
    "/service/sources": {"name": "Minimal Source"},
    "/time/entries": {"timeStart": "2026-11-02T09:00:00Z", "timeEnd": "2026-11-02T09:30:00Z"},
    "/time/workTypes": {"name": "Minimal", "billTime": "Billable", "rateType": "AdjAmount", "rate": 0},
    "/time/workRoles": {"name": "Minimal Role"},
    "/company/companies": {"identifier": "Minimal", "name": "Minimal Ltd"},
    "/company/contacts": {"firstName": "Minimal"},
    "/company/configurations": {"name": "MIN-01", "type": {"id": 1}, "company": {"id": 2}},
    "/finance/agreements": {"name": "Minimal", "type": {"id": 1}, "company": {"id": 2}, "contact": {"id": 3}},
    "/system/members": {
        "identifier": "minimal",
        "firstName": "Min",
        "lastName": "Imal",
        "licenseClass": "F",
        "hireDate": "2026-01-05T00:00:00Z",
        "defaultEmail": "Office",
        "defaultPhone": "Office",
        "securityRole": {"id": 2},
    },
    "/system/callbacks": {
        "url": "https://hooks.example.invalid/min",
        "objectId": 1,
        "type": "ticket",
        "level": "board",
    },
    "/service/tickets/{ticket}/configurations": {"id": 7},
}
# POST endpoints that are not creates (200): search takes an optional JSON object, tokens ignore the body.
