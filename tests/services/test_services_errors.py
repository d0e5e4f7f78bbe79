"""ConnectWise failures become one sentence, in the right tier."""

from __future__ import annotations

import pytest

from mcp_server_connectwise.connectwise import (
    AmbiguousWriteError,
    AuthenticationError,
    ConflictError,
    ConnectWiseError,
    DeadlineError,
    DiscoveryError,
    FieldError,
    ImpersonationError,
    NotFoundError,
    NotJsonError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TransportError,
    ValidationError,
)
from mcp_server_connectwise.services.errors import explain


@pytest.mark.parametrize(
    ("error", "outcome", "words"),
    [
        (AmbiguousWriteError("x", method="POST", path="/time/entries"), "unknown", "unknown whether it was applied"),
        (
            ValidationError(
                "ticket object is invalid", field_errors=[FieldError("InvalidField", "bad\u200b", "ticket", "summary")]
            ),
            "refused",
            "rejected the request: ticket object is invalid (ticket.summary: bad)",
        ),
        (
            NotFoundError("gone", method="GET", path="/service/boards/9"),
            "refused",
            "has no such record (GET /service/boards/9)",
        ),
        (AuthenticationError("UserNotAuthenticated", status=401), "error", "tenants set-keys acme"),
        (PermissionDeniedError("Security", status=403), "error", "security role"),
        (ConflictError("in use", status=409), "error", "read it again"),
        (RateLimitedError("slow down", retry_after=30), "error", "wait 30 seconds"),
        (RateLimitedError("slow down"), "error", "wait a minute"),
        (DiscoveryError("no such company"), "error", "check its site and company_id"),
        (TransportError("refused", reached=False), "error", "could not be reached (the connection was refused"),
        (TransportError("timeout"), "error", "accepted the connection but did not answer in time"),
        (
            DeadlineError("spent", reason="budget", retry_in=11.2),
            "error",
            "request budget is taken by other calls right now; retry in 12 s",
        ),
        (
            DeadlineError("429", reason="throttled", retry_in=20),
            "error",
            "ConnectWise is throttling tenant acme; retry in 20 s.",
        ),
        (
            DeadlineError("429", reason="throttled", retry_in=20, method="POST"),
            "error",
            "retry in 20 s. The change was not sent.",
        ),
        (DeadlineError("hang", reason="no_answer"), "error", "did not answer within the call's time"),
        (DeadlineError("down", reason="unreachable"), "error", "could not be reached within the call's time"),
        (DeadlineError("5xx", reason="failing"), "error", "keeps failing on its side"),
        (ServerError("boom", status=503), "error", "HTTP 503"),
        (ConnectWiseError("teapot", status=418), "error", "HTTP 418"),
        (NotJsonError("not JSON", method="POST", path="/time/entries", status=201), "unknown", "probably applied"),
        (NotJsonError("not JSON", method="GET", path="/service/tickets/5", status=200), "error", "not JSON; try again"),
    ],
)
def test_each_failure_has_an_actionable_sentence(error, outcome, words):
    explained = explain(error, "acme")
    assert explained.outcome == outcome
    assert words in str(explained)
    assert "tenant acme" in str(explained) or "acme" in str(explained)


def test_a_local_error_keeps_its_own_sentence_and_is_a_refusal():
    error = ConnectWiseError(
        "the request is too long to send as a URL; narrow the conditions", method="GET", path="/service/tickets"
    )
    explained = explain(error, "acme")
    assert explained.outcome == "refused"
    assert "The request is too long to send as a URL; narrow the conditions" in str(explained)


TOKENS_PATH = "/system/members/jsmith/tokens"


@pytest.mark.parametrize(
    ("error", "sentence"),
    [
        (
            ImpersonationError(
                "You do not have security permission", member="jsmith", method="POST", path=TOKENS_PATH, status=403
            ),
            "The API member of tenant acme may not act as member 'jsmith' (its security role cannot create member "
            "tokens): an administrator can allow it, or remove `member` from this principal in [http.principals]. "
            "The change was not sent.",
        ),
        (
            ImpersonationError(
                "ConnectWise refused the member's fresh keys too",
                member="jsmith",
                method="POST",
                path="/service/tickets/1/notes",
                status=401,
            ),
            "ConnectWise (tenant acme) refused the keys it made for member 'jsmith': check that member, or remove "
            "`member` from this principal in [http.principals]. The change was not sent.",
        ),
        (
            ImpersonationError(
                "member object is invalid (member.inactiveFlag: The member is inactive.)",
                member="jsmith",
                method="POST",
                path=TOKENS_PATH,
                status=400,
            ),
            "ConnectWise (tenant acme) gave no keys to write as member 'jsmith' (member object is invalid "
            "(member.inactiveFlag: The member is inactive.)): check that member, or remove `member` from this "
            "principal in [http.principals]. The change was not sent.",
        ),
    ],
)
def test_a_write_that_cannot_be_made_as_the_callers_member_says_what_to_fix(error, sentence):
    explained = explain(error, "acme")
    assert (explained.outcome, str(explained)) == ("error", sentence)
