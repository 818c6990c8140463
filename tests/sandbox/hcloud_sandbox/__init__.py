"""A local stand-in for the Hetzner Cloud API (read side), for tests and benchmarks.

    from hcloud_sandbox import Sandbox, Project, generate_world
    with Sandbox([Project("prod", "token-prod", generate_world(100))]) as sandbox:
        sandbox.url  # http://127.0.0.1:<port>/v1

Command line: `python -m hcloud_sandbox --help` (with tests/sandbox on PYTHONPATH).
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .server import Project, Sandbox
from .world import World, build_world, generate_world

__all__ = ["ApiError", "Project", "Sandbox", "World", "build_world", "generate_world", "projects_from_fixture"]


def projects_from_fixture(fixture: dict[str, Any]) -> list[Project]:
    """{"projects": [{"name", "token", "rate_limit"?, and either "generate": {"servers": N,
    "networks": 2} or the `build_world` keys "networks"/"servers"}]}"""
    projects = []
    for index, spec in enumerate(fixture.get("projects", [])):
        if "generate" in spec:
            gen = spec["generate"]
            world = generate_world(int(gen["servers"]), int(gen.get("networks", 2)), seed=index + 1,
                                   prefix=gen.get("prefix", spec["name"]))
        else:
            world = build_world(spec, first_id=index + 1)
        projects.append(Project(spec["name"], spec["token"], world,
                                rate_limit=int(spec.get("rate_limit", 3600)),
                                tokens=float(spec.get("rate_limit", 3600))))
    return projects
