"""Typed errors from real-shaped ConnectWise answers (reference/connectwise/examples/error_bodies.json), and no
secret in any error text or log line."""

from __future__ import annotations

import base64
import logging
import traceback
from dataclasses import dataclass, field

import httpx2
import pytest

from mcp_server_connectwise.connectwise import (
    AmbiguousWriteError,
    ApiCredentials,
    AuthenticationError,
    ClientSettings,
    ConflictError,
    ConnectWiseClient,
    ConnectWiseError,
    DiscoveryError,
    FieldError,
    NotFoundError,
    NotJsonError,
    PermissionDeniedError,
    RateLimitedError,
    RequestRecord,
    RetryPolicy,
    ServerError,
    TransportError,
    ValidationError,
)
from mcp_server_connectwise.connectwise import client as client_module
from mcp_server_connectwise.connectwise.conditions import eq

BASE = "https://api-na.myconnectwise.net/v2025_1/apis/3.0"
PUBLIC_KEY = "pubKEY0a1b2c3d"
PRIVATE_KEY = "privSECRETz9y8x7w6"
AUTH_TOKEN = base64.b64encode(f"acme+{PUBLIC_KEY}:{PRIVATE_KEY}".encode()).decode()


@dataclass
class Scenario:
    name: str
    error: type[ConnectWiseError]
    status: int | None = None  # None: the transport raises `raises`
    body: dict | None = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "GET"
    path: str = "/service/tickets/1255787"
    raises: type[Exception] | None = None

    def response(self, request: httpx2.Request) -> httpx2.Response:
        if self.raises is not None:
            raise self.raises("connection trouble", request=request)
        if self.body is not None:
            return httpx2.Response(self.status, json=self.body, headers=self.headers)
        return httpx2.Response(self.status, text=self.text or "", headers=self.headers)


SCENARIOS = [
    Scenario("ticket not found", NotFoundError, 404, {"code": "NotFound", "message": "Ticket 1255787 not found"}),
    Scenario(
        "unknown endpoint",
        NotFoundError,
        404,
        {"code": "ConnectWiseApi", "message": "The endpoint does not exist."},
        path="/service/tikets",
    ),
    Scenario(
        "contact missing first name",
        ValidationError,
        400,
        {
            "code": "InvalidObject",
            "message": "contact object is invalid",
            "errors": [
                {
                    "code": "MissingRequiredField",
                    "message": "The firstName field is required.",
                    "resource": "contact",
                    "field": "firstName",
                }
            ],
        },
        method="POST",
        path="/company/contacts",
    ),
    Scenario(
        "ticket invalid as text",
        ValidationError,
        400,
        text="InvalidObject: ticket object is invalid",
        method="POST",
        path="/service/tickets",
    ),
    Scenario(
        "bad credentials",
        AuthenticationError,
        401,
        {"code": "ConnectWiseApi", "message": "UserNotAuthenticated"},
        path="/system/info",
    ),
    Scenario(
        "security role",
        PermissionDeniedError,
        403,
        {"code": "Security", "message": "You do not have security permission to perform this action."},
        method="POST",
        path="/time/entries",
    ),
    # ConnectWise publishes no 409 body; this one follows its usual {code, message} shape.
    Scenario(
        "record in use",
        ConflictError,
        409,
        {"code": "Conflict", "message": "Ticket 5 is in use by another user."},
        method="PATCH",
        path="/service/tickets/5",
    ),
    Scenario(
        "rate limited",
        RateLimitedError,
        429,
        {"error": "ConnectWiseAPI", "message": "Too many requests. Please try again in 30 seconds."},
        headers={"Retry-After": "30"},
    ),
    Scenario(
        "server exception",
        ServerError,
        500,
        {
            "code": "ConnectWiseApi",
            "message": "Length cannot be less than zero.\r\nParameter name: length",
            "errors": None,
        },
    ),
    Scenario("gateway html", ServerError, 502, text="<html><body><h1>502 Bad Gateway</h1></body></html>"),
    Scenario("method not allowed", ConnectWiseError, 405, text=""),
    Scenario("no connection", TransportError, raises=httpx2.ConnectError),
    Scenario("read timeout on GET", TransportError, raises=httpx2.ReadTimeout),
    Scenario(
        "read timeout on POST", AmbiguousWriteError, raises=httpx2.ReadTimeout, method="POST", path="/service/tickets"
    ),
    Scenario(
        "gateway timeout on POST",
        AmbiguousWriteError,
        504,
        text="Gateway Timeout",
        method="POST",
        path="/service/tickets",
    ),
    # A 2xx is success, so a body that cannot be read is its own error: a write behind it probably happened.
    Scenario("200 html on GET", NotJsonError, 200, text="<html><body>Sign in</body></html>"),
    Scenario("201 text on POST", NotJsonError, 201, text="Created", method="POST", path="/service/tickets/5/notes"),
    Scenario("200 text on PATCH", NotJsonError, 200, text="OK", method="PATCH", path="/service/tickets/5"),
]


def make_client(handler, **settings) -> ConnectWiseClient:
    async def no_wait(seconds: float) -> None:
        return None

    settings.setdefault("base_url", BASE)
    return ConnectWiseClient(
        ClientSettings(company_id="acme", client_id="client-guid", retry=RetryPolicy(max_attempts=2), **settings),
        ApiCredentials(PUBLIC_KEY, PRIVATE_KEY),
        transport=httpx2.MockTransport(handler),
        sleep=no_wait,
    )


async def run(scenario: Scenario) -> ConnectWiseError:
    async with make_client(scenario.response) as client:
        with pytest.raises(ConnectWiseError) as caught:
            if scenario.method == "GET":
                await client.get(scenario.path)
            elif scenario.method == "POST":
                await client.post(scenario.path, {"summary": "x"})
            else:
                await client.patch(scenario.path, [{"op": "replace", "path": "summary", "value": "x"}])
    return caught.value


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.name)
async def test_each_answer_becomes_its_typed_error(scenario: Scenario) -> None:
    error = await run(scenario)
    assert type(error) is scenario.error
    assert error.status == scenario.status
    assert (error.method, error.path) == (scenario.method, scenario.path)
    text = str(error)
    assert f"{scenario.method} {scenario.path}" in text
    if scenario.body is not None:
        assert error.code == (scenario.body.get("code") or scenario.body.get("error"))
        one_line = " ".join(scenario.body["message"].split())
        assert error.message.startswith(one_line) and one_line in text


async def test_a_2xx_whose_body_is_not_json_says_so_with_its_status() -> None:
    for scenario in [scenario for scenario in SCENARIOS if scenario.error is NotJsonError]:
        error = await run(scenario)
        assert isinstance(error, NotJsonError) and 200 <= error.status < 300
        assert "not JSON" in error.message and f"HTTP {scenario.status}" in str(error)


async def test_validation_error_lists_field_errors() -> None:
    error = await run(SCENARIOS[2])
    assert isinstance(error, ValidationError)
    assert error.field_errors == [
        FieldError("MissingRequiredField", "The firstName field is required.", "contact", "firstName")
    ]
    assert "contact.firstName: The firstName field is required." in str(error)


async def test_validation_error_with_several_fields() -> None:
    body = {
        "code": "InvalidObject",
        "message": "callbackEntry object is invalid",
        "errors": [
            {"code": "InvalidField", "message": "Invalid URL", "resource": "callbackEntry", "field": "url"},
            {
                "code": "InvalidObject",
                "message": "Unrecognized level for type, see documentation for supported levels for each type",
                "resource": "callbackEntry",
                "field": "level",
            },
        ],
    }
    error = await run(Scenario("callback", ValidationError, 400, body, method="POST", path="/system/callbacks"))
    assert isinstance(error, ValidationError)
    assert [(e.field, e.code) for e in error.field_errors] == [("url", "InvalidField"), ("level", "InvalidObject")]


async def test_text_bodies_are_quoted_not_parsed() -> None:
    error = await run(SCENARIOS[3])
    assert isinstance(error, ValidationError) and error.code is None and error.field_errors == []
    assert error.message == "InvalidObject: ticket object is invalid"


async def test_rate_limited_error_carries_retry_after() -> None:
    error = await run(SCENARIOS[7])
    assert isinstance(error, RateLimitedError) and error.retry_after == 30
    assert "retry after 30 s" in str(error)


async def test_ambiguous_write_is_not_a_transport_error() -> None:
    error = await run(SCENARIOS[13])
    assert not isinstance(error, TransportError)
    assert "the request was sent but no answer came back" in str(error)


async def test_no_secret_in_any_error_text_record_or_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    records: list[RequestRecord] = []
    for scenario in SCENARIOS:
        error = await run(scenario)
        texts += [str(error), repr(error), "".join(traceback.format_exception(error))]

    async def failing_companyinfo(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, text="Cannot route. Codebase/company is invalid")

    client_module._discovered_base_urls.clear()
    async with make_client(failing_companyinfo, base_url=None, site="api-na.myconnectwise.net") as client:
        with pytest.raises(DiscoveryError) as caught:
            await client.get("/system/info")
        texts += [str(caught.value), repr(caught.value), repr(client)]

    async with ConnectWiseClient(
        ClientSettings(company_id="acme", client_id="client-guid", base_url=BASE),
        ApiCredentials(PUBLIC_KEY, PRIVATE_KEY),
        transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json={"ok": True})),
        on_request=records.append,
    ) as client:
        await client.post("/service/tickets", {"summary": "x"})

    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(record) for record in records]
    assert any("->" in record.getMessage() for record in caplog.records)  # the client did log at DEBUG
    everything = "\n".join(texts)
    for secret in (PRIVATE_KEY, PUBLIC_KEY, AUTH_TOKEN, "Basic "):
        assert secret not in everything


async def test_an_over_long_url_is_reported_as_too_long() -> None:
    async with make_client(lambda request: httpx2.Response(200, json=[])) as client:
        with pytest.raises(ConnectWiseError) as caught:
            await client.get_page("/service/tickets", conditions=eq("summary", "x" * 70_000))
    assert "too long" in caught.value.message and "xxxx" not in str(caught.value)


async def test_another_invalid_url_names_its_problem_not_length_and_not_the_url() -> None:
    sent: list[httpx2.Request] = []
    async with make_client(lambda request: sent.append(request) or httpx2.Response(200, json={})) as client:
        with pytest.raises(ConnectWiseError) as caught:
            await client.get("/service/tickets/5\x07secret-looking-path-part")
    error = caught.value
    assert type(error) is ConnectWiseError and sent == []
    assert "too long" not in str(error) and "invalid" in error.message and "non-printable" in error.message
    assert BASE not in str(error) and "api-na" not in str(error)
