"""Reading a request body the way the API checks it: every refusal is 422 `invalid_input` naming
the field (`details.fields[].name`), so a client's error handling is tested against real messages."""

from __future__ import annotations

import json
import re
from typing import Any

from . import selector
from .errors import ApiError, invalid

HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_MISSING = object()


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as an object; 400 json_error otherwise (an empty body is an empty object)."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "json_error", f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "json_error", "request body must be a JSON object")
    return data


class Body:
    """Typed access to one JSON object; `prefix` names nested fields ("public_net.ipv4")."""

    def __init__(self, data: dict[str, Any], prefix: str = ""):
        if not isinstance(data, dict):
            raise invalid(prefix.rstrip(".") or "body", "must be an object")
        self.data = data
        self.prefix = prefix

    def field(self, name: str) -> str:
        return self.prefix + name

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def _get(self, name: str, required: bool) -> Any:
        value = self.data.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise invalid(self.field(name), "is required")
            return _MISSING
        return value

    def str(self, name: str, required: bool = False, default: Any = None, choices: tuple[str, ...] = ()) -> Any:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if not isinstance(value, str) or not value:
            raise invalid(self.field(name), "must be a non-empty string")
        if choices and value not in choices:
            raise invalid(self.field(name), f"must be one of {', '.join(choices)}")
        return value

    def int(self, name: str, required: bool = False, default: Any = None, minimum: int | None = None) -> Any:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(self.field(name), "must be an integer")
        if minimum is not None and value < minimum:
            raise invalid(self.field(name), f"must be at least {minimum}")
        return value

    def bool(self, name: str, default: bool | None = None) -> Any:
        value = self._get(name, False)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise invalid(self.field(name), "must be a boolean")
        return value

    def ref(self, name: str, required: bool = False) -> Any:
        """An ID or a name (the API takes either for types, images, locations, keys)."""
        value = self._get(name, required)
        if value is _MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
            raise invalid(self.field(name), "must be an ID or a name")
        return value

    def list(self, name: str, required: bool = False) -> list[Any]:
        value = self._get(name, required)
        if value is _MISSING:
            return []
        if not isinstance(value, list):
            raise invalid(self.field(name), "must be a list")
        return value

    def obj(self, name: str, required: bool = False) -> Body | None:
        value = self._get(name, required)
        if value is _MISSING:
            return None
        if not isinstance(value, dict):
            raise invalid(self.field(name), "must be an object")
        return Body(value, self.field(name) + ".")

    def items(self, name: str, required: bool = False) -> list[Body]:
        """A list of objects, each readable as a Body named "rules[2].port"."""
        result = []
        for index, item in enumerate(self.list(name, required)):
            if not isinstance(item, dict):
                raise invalid(f"{self.field(name)}[{index}]", "must be an object")
            result.append(Body(item, f"{self.field(name)}[{index}]."))
        return result

    def labels(self, name: str = "labels") -> dict[str, str] | None:
        """Labels as the API validates them; None when the field is absent (keep the old ones)."""
        value = self._get(name, False)
        if value is _MISSING:
            return None
        if not isinstance(value, dict):
            raise invalid(self.field(name), "must be an object of strings")
        for key, label in value.items():
            if not selector.LABEL_KEY.fullmatch(key) or key.startswith("hetzner.cloud/"):
                raise invalid(self.field(name), f"label key {key!r} is invalid")
            if not isinstance(label, str) or not selector.LABEL_VALUE.fullmatch(label):
                raise invalid(self.field(name), f"label value {label!r} of key {key!r} is invalid")
        return dict(value)

    def hostname(self, name: str = "name") -> str:
        value = self.str(name, required=True)
        if not HOSTNAME.match(value):
            raise invalid(self.field(name), "must be a valid hostname (RFC 1123)")
        return value
