"""Hetzner Cloud label selectors, as the API evaluates them.

Grammar (https://docs.hetzner.cloud/#label-selector), expressions joined by commas, all must hold:

    key            the label exists          !key            the label is absent
    key=value      equal (also key==value)   key!=value      absent or different
    key in (a,b)   one of the values         key notin (a,b) absent or none of the values
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

Predicate = Callable[[Mapping[str, str]], bool]

# Label keys may carry a DNS-style prefix: "example.com/role".
_KEY = r"(?:[a-z0-9A-Z](?:[-a-z0-9A-Z.]{0,251}[a-z0-9A-Z])?/)?[a-z0-9A-Z](?:[-_.a-z0-9A-Z]{0,61}[a-z0-9A-Z])?"
_VALUE = r"(?:[a-z0-9A-Z](?:[-_.a-z0-9A-Z]{0,61}[a-z0-9A-Z])?)?"
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(\s*({_VALUE}(?:\s*,\s*{_VALUE})*)\s*\)\s*$")
_CMP = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*({_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")
# What a label itself may be (the API refuses other keys and values on writes).
LABEL_KEY = re.compile(rf"^{_KEY}$")
LABEL_VALUE = re.compile(rf"^{_VALUE}$")


class SelectorError(ValueError):
    """The selector is not valid label-selector syntax."""


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside an `in (...)` set."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in label selector {selector!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise SelectorError(f"unbalanced '(' in label selector {selector!r}")
    parts.append("".join(current))
    return parts


def parse(selector: str) -> list[Predicate]:
    """Return one predicate per expression; raise SelectorError on bad syntax."""
    if not selector.strip():
        return []
    predicates: list[Predicate] = []
    for expr in _split(selector):
        if not expr.strip():
            raise SelectorError(f"empty expression in label selector {selector!r}")
        match = _SET.match(expr)
        if match:
            key, op, raw = match.groups()
            values = frozenset(v.strip() for v in raw.split(","))
            if op == "in":
                predicates.append(lambda labels, k=key, vs=values: k in labels and labels[k] in vs)
            else:
                predicates.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
            continue
        match = _CMP.match(expr)
        if match:
            key, op, value = match.groups()
            if op == "!=":
                predicates.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                predicates.append(lambda labels, k=key, v=value: k in labels and labels[k] == v)
            continue
        match = _EXISTS.match(expr)
        if match:
            negate, key = match.groups()
            if negate:
                predicates.append(lambda labels, k=key: k not in labels)
            else:
                predicates.append(lambda labels, k=key: k in labels)
            continue
        raise SelectorError(f"invalid expression {expr.strip()!r} in label selector {selector!r}")
    return predicates


def matches(predicates: list[Predicate], labels: Mapping[str, str]) -> bool:
    return all(p(labels) for p in predicates)
