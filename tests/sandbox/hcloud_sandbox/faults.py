"""Faults a test switches on (POST /_sandbox/faults): the next N writes answer an error, or the
next action of a command ends in `error`. Each fault is used up as it fires."""

from __future__ import annotations

import threading
from typing import Any

from .errors import STATUS, ApiError

WRITE_CODES = {"conflict": 409, "locked": 423, "resource_in_use": 422, "rate_limit_exceeded": 429,
               "server_error": 500, "timeout": 504}


class Faults:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writes: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []

    def configure(self, settings: dict[str, Any]) -> None:
        """{"writes": [{"code": "conflict", "count": 2}], "actions": [{"command": "create_server",
        "code": "server_error", "count": 1, "message": "..."}]} (each list is appended to)."""
        unknown = set(settings) - {"writes", "actions"}
        if unknown:
            raise ApiError(400, "invalid_input", f"unknown fault kinds: {', '.join(sorted(unknown))}")
        writes, actions = [], []
        for fault in settings.get("writes", []):
            code = fault.get("code")
            if code not in WRITE_CODES:
                raise ApiError(400, "invalid_input", f"write fault code must be one of {', '.join(WRITE_CODES)}")
            writes.append({"code": code, "count": int(fault.get("count", 1)),
                           "message": fault.get("message", f"sandbox fault: {code}")})
        for fault in settings.get("actions", []):
            if not fault.get("command") or not fault.get("code"):
                raise ApiError(400, "invalid_input", "an action fault needs command and code")
            actions.append({"command": fault["command"], "code": fault["code"], "count": int(fault.get("count", 1)),
                            "message": fault.get("message", f"sandbox fault: {fault['code']}")})
        with self.lock:
            self.writes.extend(writes)
            self.actions.extend(actions)

    def take_write_error(self) -> ApiError | None:
        with self.lock:
            if not self.writes:
                return None
            fault = self.writes[0]
            fault["count"] -= 1
            if fault["count"] <= 0:
                self.writes.pop(0)
        return ApiError(WRITE_CODES.get(fault["code"], STATUS.get(fault["code"], 422)), fault["code"], fault["message"])

    def take_action_error(self, command: str) -> dict[str, str] | None:
        with self.lock:
            for fault in self.actions:
                if fault["command"] == command:
                    fault["count"] -= 1
                    if fault["count"] <= 0:
                        self.actions.remove(fault)
                    return {"code": fault["code"], "message": fault["message"]}
        return None

    def pending(self) -> dict[str, Any]:
        with self.lock:
            return {"writes": [dict(f) for f in self.writes], "actions": [dict(f) for f in self.actions]}

    def clear(self) -> None:
        with self.lock:
            self.writes.clear()
            self.actions.clear()
