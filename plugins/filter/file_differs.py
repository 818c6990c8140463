# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether what host_probe read on the host differs from what a task would write (so the task can be skipped)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

# Documentation: one plugins/filter/<filter name>.yml per filter of this file.


def file_differs(entry: Any, content: Any, mode: str, owner: str = "root", group: str = "root") -> bool:
    if not isinstance(entry, Mapping) or not entry.get("exists") or not entry.get("sha1"):
        return True
    digest = hashlib.sha1(str(content).encode("utf-8")).hexdigest()
    wanted_mode = str(mode).zfill(4)
    return (entry.get("sha1"), entry.get("mode"), entry.get("owner"), entry.get("group")) != (digest, wanted_mode, owner, group)


def files_to_write(items: Any, files: Any, contents: Any, path_key: str = "dest", mode_key: str = "mode",
                   owner: str = "root", group: str = "root") -> list:
    """The items of a loop whose file would change: items[i] is written with contents[i] at
    items[i][path_key] with mode items[i][mode_key]; `files` is host_probe's files result."""
    items, contents = list(items or []), list(contents or [])
    if len(items) != len(contents):
        raise ValueError(f"files_to_write: {len(items)} items but {len(contents)} contents")
    files = files if isinstance(files, Mapping) else {}
    out = []
    for item, content in zip(items, contents):
        path, mode = item[path_key], item[mode_key]
        if file_differs(files.get(path), content, mode, item.get("owner", owner), item.get("group", group)):
            out.append(item)
    return out


def dirs_to_make(items: Any, files: Any, path_key: str = "path", mode_key: str = "mode",
                 owner: str = "root", group: str = "root") -> list:
    """The items of a loop whose directory is missing or has another mode, owner or group."""
    files = files if isinstance(files, Mapping) else {}
    out = []
    for item in list(items or []):
        entry = files.get(item[path_key])
        wanted = (True, str(item[mode_key]).zfill(4), item.get("owner", owner), item.get("group", group))
        if not isinstance(entry, Mapping) or (entry.get("isdir"), entry.get("mode"), entry.get("owner"), entry.get("group")) != wanted:
            out.append(item)
    return out


def services_to_change(items: Any, services: Any, name_key: str = "name", on_key: str = "on") -> list:
    """The items of a loop whose unit is not yet enabled and active (on) or disabled and inactive (off)."""
    services = services if isinstance(services, Mapping) else {}
    out = []
    for item in list(items or []):
        state = services.get(item[name_key])
        wanted = _truthy(item[on_key])
        if not isinstance(state, Mapping) or (bool(state.get("enabled")), bool(state.get("active"))) != (wanted, wanted):
            out.append(item)
    return out


def _truthy(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "yes", "on", "1")


def block_differs(content: Any, block: Any, marker: str, present: bool = True) -> bool:
    """Whether ansible.builtin.blockinfile would change a file whose text host_probe read
    (``contents``): with ``present``, unless the marker lines with exactly these lines between them
    are in the file; without, when the begin marker is there. A file not read (None) differs."""
    if not isinstance(content, str):
        return True
    lines = content.splitlines()
    begin, end = marker.replace("{mark}", "BEGIN"), marker.replace("{mark}", "END")
    if not _truthy(present):
        return begin in lines
    wanted = [begin] + str(block or "").splitlines() + [end]
    return not any(lines[i:i + len(wanted)] == wanted for i, line in enumerate(lines) if line == begin)


def line_differs(content: Any, regexp: str, line: str) -> bool:
    """Whether ansible.builtin.lineinfile (state present, with ``regexp``) would change a file whose
    text host_probe read: it replaces the last line that matches, or adds the line when none does.
    A file not read (None) differs."""
    if not isinstance(content, str):
        return True
    compiled = re.compile(regexp)
    matching = [text for text in content.splitlines() if compiled.search(text)]
    return not matching or matching[-1] != line


def lines_to_write(items: Any, content: Any, regexp_key: str = "regexp", line_key: str = "line") -> list:
    """The items of a lineinfile loop (over one file whose text host_probe read) whose line
    line_differs: a no-change run loops over nothing."""
    return [item for item in list(items or []) if line_differs(content, item[regexp_key], item[line_key])]


class FilterModule:
    """anvil.hetzner file_differs, files_to_write, dirs_to_make, services_to_change, block_differs,
    line_differs and lines_to_write filters."""

    def filters(self) -> dict[str, Any]:
        return {"file_differs": file_differs, "files_to_write": files_to_write, "dirs_to_make": dirs_to_make,
                "services_to_change": services_to_change, "block_differs": block_differs, "line_differs": line_differs,
                "lines_to_write": lines_to_write}
