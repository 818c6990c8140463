"""The state file: every project's world as JSON, written atomically after each write and each
action's end, and read back at start so a sandbox restart keeps what clients created.

On reload, actions that were running end in `error` (code `interrupted`), volumes that were being
created are `available`, and a server's status comes from the backend (`server_running`); the
record backend has no machines, so there the saved status stands (a transitional one settles)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import links
from .world import WRITABLE_KINDS, World

if TYPE_CHECKING:
    from .backend import Backend
    from .server import Project

VERSION = 1
SETTLED = {"initializing": "off", "starting": "running", "stopping": "off", "rebuilding": "running",
           "deleting": "off", "migrating": "running"}


def project_state(project: Project) -> str:
    """One project as JSON text (caller holds the project's lock)."""
    world = project.world
    data = {kind: getattr(world, kind) for kind in (*WRITABLE_KINDS, "actions")}
    data["internal"] = world.internal
    return json.dumps({"name": project.name, "token": project.token, "rate_limit": project.rate_limit,
                       "world": data}, separators=(",", ":"))


class StateFile:
    """Writes are serialised here; each project's part is taken under its own lock, so two
    projects' writes never wait for each other's locks."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.parts: dict[str, str] = {}

    def start(self, projects: list[Project]) -> None:
        """Take every project's part once before serving (later saves never need other locks)."""
        for project in projects:
            with project.lock:
                self.parts[project.name] = project_state(project)
        self.save(projects[0], projects)

    def save(self, project: Project, projects: list[Project]) -> None:
        part = project_state(project)
        with self.lock:
            self.parts[project.name] = part
            text = '{"version":%d,"projects":[%s]}' % (VERSION, ",".join(self.parts[p.name] for p in projects))
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.path)


def load(path: Path, backend: Backend) -> list[dict[str, Any]]:
    """The saved projects as {"name", "token", "rate_limit", "world"} with statuses settled."""
    data = json.loads(path.read_text())
    if data.get("version") != VERSION:
        raise ValueError(f"{path}: state file version {data.get('version')!r}, expected {VERSION}")
    result = []
    for saved in data["projects"]:
        world = World(**{kind: saved["world"].get(kind, []) for kind in (*WRITABLE_KINDS, "actions")},
                      internal=saved["world"].get("internal", {}))
        for server in world.servers:
            running = backend.server_running(saved["name"], server["id"])
            if running is None:  # no machines (the record backend): the saved status, settled
                server["status"] = SETTLED.get(server["status"], server["status"])
            else:
                server["status"] = "running" if running else "off"
        for volume in world.volumes:
            if volume["status"] == "creating":
                volume["status"] = "available"
        for action in world.actions:
            if action["status"] == "running":
                action.update(status="error", progress=100, finished=action["started"],
                              error={"code": "interrupted", "message": "the sandbox restarted while it ran"})
        links.refresh(world)
        result.append({"name": saved["name"], "token": saved["token"], "rate_limit": saved["rate_limit"],
                       "world": world})
    return result
