"""The API's error answers: `{"error": {"code", "message", "details"}}` with the HTTP status the
Hetzner Cloud API uses for each code.

Request-body validation answers 422 `invalid_input` with `details.fields` naming each field, as the
API does; query-parameter errors keep the read side's 400.
"""

from __future__ import annotations

from typing import Any

# The status of every code the sandbox answers (call-specific codes are all 422 in the API).
STATUS = {
    "json_error": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "uniqueness_error": 409,
    "conflict": 409,
    "invalid_input": 422,
    "locked": 423,
    "protected": 423,
    "rate_limit_exceeded": 429,
    "server_error": 500,
}


class ApiError(Exception):
    """An error answer; `details` is sent as is (`{}` when there is nothing to add)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 details: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def error(code: str, message: str, details: dict[str, Any] | None = None) -> ApiError:
    """An error with the status the API uses for `code` (422 for call-specific codes)."""
    return ApiError(STATUS.get(code, 422), code, message, details=details)


def invalid(field: str, message: str) -> ApiError:
    """422 invalid_input naming the field, in the API's words: "invalid input in field 'x': ..."."""
    return ApiError(422, "invalid_input", f"invalid input in field '{field}': {message}",
                    details={"fields": [{"name": field, "messages": [message]}]})


def not_unique(field: str, message: str) -> ApiError:
    return ApiError(409, "uniqueness_error", message, details={"fields": [{"name": field}]})


def not_found(kind: str, ident: Any) -> ApiError:
    return ApiError(404, "not_found", f"{kind} with ID {ident} not found")


def locked(kind: str, ident: int) -> ApiError:
    return ApiError(423, "locked", f"{kind} {ident} is locked: another action is running")


def protected(kind: str, ident: int, what: str) -> ApiError:
    return ApiError(423, "protected", f"{kind} {ident} is protected against {what}")
