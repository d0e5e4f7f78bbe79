"""ConnectWise's error bodies, raised as exceptions by the store and the routes and rendered by the app."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error with ConnectWise's JSON body."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("message"))
        self.status = status
        self.body = body
        self.headers = headers or {}


def not_authenticated() -> ApiError:
    return ApiError(401, {"code": "ConnectWiseApi", "message": "UserNotAuthenticated"})


def security_denied() -> ApiError:
    return ApiError(403, {"code": "Security", "message": "You do not have security permission to perform this action."})


def endpoint_missing() -> ApiError:
    return ApiError(404, {"code": "ConnectWiseApi", "message": "The endpoint does not exist."})


def method_not_supported(method: str) -> ApiError:
    # [I] ASP.NET Web API's wording for a known path with an unsupported verb.
    return ApiError(
        405, {"code": "ConnectWiseApi", "message": f"The requested resource does not support http method '{method}'."}
    )


def not_found(entity: str, key: object) -> ApiError:
    return ApiError(404, {"code": "NotFound", "message": f"{entity} {key} not found"})


def bad_request(message: str) -> ApiError:
    """A request ConnectWise refuses before looking at any record (bad conditions, orderBy, paging, JSON)."""
    return ApiError(400, {"code": "InvalidObject", "message": message, "errors": None})


def field_error(code: str, message: str, resource: str, field: str) -> dict[str, str]:
    return {"code": code, "message": message, "resource": resource, "field": field}


def invalid_object(resource: str, errors: list[dict[str, str]]) -> ApiError:
    return ApiError(400, {"code": "InvalidObject", "message": f"{resource} object is invalid", "errors": errors})
