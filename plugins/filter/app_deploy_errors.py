# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app_deploy role's input check and its release bookkeeping (what to deploy, the history).

Messages name the variable and never contain a value of an environment variable or a password."""

from __future__ import annotations

import hashlib
import json
import re

import yaml
from collections.abc import Mapping
from typing import Any

from ansible_collections.anvil.hetzner.plugins.plugin_utils import checks as c

_NAME = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
_SERVICE_KEYS = {"name", "image", "tag", "digest", "command", "environment", "volumes", "port"}
_IMAGE = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*$")  # registry[:port]/path, lower case, no tag
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VOLUME = re.compile(r"^(/[A-Za-z0-9._/-]*|[a-zA-Z0-9][a-zA-Z0-9_.-]*):/[A-Za-z0-9._/-]*(:(ro|rw))?$")
_DOMAIN = re.compile(c.HOST_NAME_RE)
# states a release can be in; "was live" ones can be gone back to
WAS_LIVE = ("live", "retired", "rolled-back")
HISTORY_LENGTH = 30
_COMPOSE_KEYS = {"file", "service", "port", "environment"}
# Accessories (long-running services next to the app: its database, its cache): one container each,
# `<app>-<name>`, never part of a release, never published.
_ACCESSORY_KEYS = {"name", "image", "tag", "digest", "command", "environment", "volumes", "health"}
_ACCESSORY_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$")
# what an accessory's health check gets where its description leaves a key out (seconds)
ACCESSORY_HEALTH_DEFAULTS = {"interval": 5, "timeout": 5, "retries": 10, "start_period": 0}
_ACCESSORY_HEALTH_RANGES = {"interval": (1, 3600), "timeout": (1, 3600), "retries": (1, 100), "start_period": (0, 3600)}
# the container's labels: anvil.accessory=<app> (never anvil.app: the release logic reads those),
# its name, and one hash per part of its description (a changed part recreates the container)
ACCESSORY_LABEL = "anvil.accessory"
ACCESSORY_PARTS = ("image", "command", "environment", "volumes", "health")
# a compose service key that breaks two releases side by side or the 127.0.0.1-only rule, and why
_COMPOSE_REFUSED = {
    "ports": "publishes ports itself: Docker's published ports bypass UFW and two releases would ask for the "
             "same port; app_deploy publishes the web service on 127.0.0.1 only, per colour",
    "container_name": "fixes the container's name: two releases run side by side, app_deploy names them",
    "build": "builds on the server: build and push the image in CI, the server pulls it (and keeps it for rollback)",
}


def _health_errors(health: Any) -> list[str]:
    if not isinstance(health, Mapping) or not health.get("path"):
        return ["app_deploy_health: needs a path (the web service's health endpoint, e.g. /health): "
                "no release takes traffic without a health check"]
    errors = []
    path = health["path"]
    if not isinstance(path, str) or not path.startswith("/") or re.search(r"[\s\"'{}]", path):
        errors.append(f"app_deploy_health.path: {path!r} must be a URL path starting with /")
    for key, low, high in (("timeout", 1, 60), ("retries", 1, 600), ("interval", 1, 60)):
        if key in health and (not c.is_int(health[key]) or not low <= health[key] <= high):
            errors.append(f"app_deploy_health.{key}: must be a whole number from {low} to {high}")
    unknown = sorted(set(health) - {"path", "timeout", "retries", "interval"})
    if unknown:
        errors.append(f"app_deploy_health: unknown keys {unknown} (path, timeout, retries, interval)")
    return errors


def _environment_errors(where: str, environment: Any) -> list[str]:
    """NAME: value pairs; only the name is ever shown, never the value."""
    if not isinstance(environment, Mapping):
        return [f"{where}: must be a mapping of NAME: value"]
    errors = []
    for key, value in environment.items():
        if not isinstance(key, str) or not _ENV_KEY.match(key):
            errors.append(f"{where}: {key!r} is not a variable name")
        elif isinstance(value, (Mapping, list)) or value is None:
            errors.append(f"{where}.{key}: must be a single-line string or number (the value is not shown)")
        else:
            errors += c.secret_errors(f"{where}.{key}", value)
    return errors


def _image_errors(where: str, item: Mapping[str, Any]) -> list[str]:
    """image (no tag) and exactly one of tag and digest, of a service or an accessory."""
    errors = []
    image = item.get("image")
    # a colon is allowed in the registry part (host:port), never after the last slash (a tag)
    if not isinstance(image, str) or not _IMAGE.match(image) or "@" in image or ":" in image.rsplit("/", 1)[-1]:
        errors.append(f"{where}.image: {image!r} must be an image name without tag or digest "
                      "(registry.example.com/team/app); the tag or digest goes in tag or digest")
    has_tag, has_digest = bool(item.get("tag")), bool(item.get("digest"))
    if has_tag == has_digest:
        errors.append(f"{where}: needs exactly one of tag or digest")
    if has_tag and (not isinstance(item["tag"], str) or not _TAG.match(item["tag"])):
        errors.append(f"{where}.tag: {item['tag']!r} is not a Docker tag")
    if has_digest and (not isinstance(item["digest"], str) or not _DIGEST.match(item["digest"])):
        errors.append(f"{where}.digest: must be sha256: and 64 hex digits")
    return errors


def _volumes_errors(where: str, volumes: Any) -> list[str]:
    if not c.is_list(volumes):
        return [f"{where}.volumes: must be a list of name:/path or /host/path:/path[:ro]"]
    return [f"{where}.volumes[{number}]: {volume!r} must be name:/path or /host/path:/path[:ro]"
            for number, volume in enumerate(volumes) if not isinstance(volume, str) or not _VOLUME.match(volume)]


def _service_errors(index: int, service: Any) -> list[str]:
    where = f"app_deploy_services[{index}]"
    if not isinstance(service, Mapping):
        return [f"{where}: must be a mapping with name, image and tag or digest"]
    errors = []
    name = service.get("name")
    if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9-]{0,20}$", name):
        errors.append(f"{where}.name: {name!r} must be a short lower-case name (a-z 0-9 -)")
        where_named = where
    else:
        where_named = f"{where} ({name})"
    unknown = sorted(str(k) for k in set(service) - _SERVICE_KEYS)
    if unknown:
        errors.append(f"{where_named}: unknown keys {unknown} (allowed: {', '.join(sorted(_SERVICE_KEYS))})")
    errors += _image_errors(where_named, service)
    command = service.get("command", [])
    if not (isinstance(command, str) or (c.is_list(command) and all(isinstance(a, str) for a in command))):
        errors.append(f"{where_named}.command: must be a string or a list of strings")
    errors += _environment_errors(f"{where_named}.environment", service.get("environment", {}))
    errors += _volumes_errors(where_named, service.get("volumes", []))
    if "port" in service:
        errors += c.PORT.errors(f"{where_named}.port", service["port"])
    return errors


def _services_errors(services: Any) -> list[str]:
    if not c.is_list(services) or not services:
        return ["app_deploy_services: needs at least one service, one of them with a port "
                "(or your own compose file in app_deploy_compose)"]
    errors = []
    for index, service in enumerate(services):
        errors += _service_errors(index, service)
    names = [s.get("name") for s in services if isinstance(s, Mapping)]
    doubles = sorted({n for n in names if names.count(n) > 1 and isinstance(n, str)})
    if doubles:
        errors.append(f"app_deploy_services: names used twice: {doubles}")
    web = [s for s in services if isinstance(s, Mapping) and "port" in s]
    if len(web) != 1:
        errors.append(f"app_deploy_services: exactly one service needs a port (the one Caddy sends traffic to), "
                      f"found {len(web)}")
    return errors


def _accessory_health_errors(where: str, health: Any) -> list[str]:
    if not isinstance(health, Mapping):
        return [f"{where}: must be a mapping with test (and interval, timeout, retries, start_period in seconds)"]
    errors = []
    unknown = sorted(str(k) for k in set(health) - {"test", *ACCESSORY_HEALTH_DEFAULTS})
    if unknown:
        errors.append(f"{where}: unknown keys {unknown} (test, interval, timeout, retries, start_period)")
    test = health.get("test")
    if isinstance(test, str):
        if not test.strip() or "\n" in test:
            errors.append(f"{where}.test: must be a one-line shell command (or a list: [CMD, ...] / [CMD-SHELL, ...])")
    elif not (c.is_list(test) and len(test) >= 2 and all(isinstance(a, str) for a in test)
              and test[0] in ("CMD", "CMD-SHELL")):
        errors.append(f"{where}.test: needs a command: a string (run by the container's shell) or a list "
                      "[CMD, program, arg...] / [CMD-SHELL, command]")
    for key, (low, high) in _ACCESSORY_HEALTH_RANGES.items():
        if key in health:
            value = c.convert("int", health[key])
            if not c.is_int(value) or not low <= value <= high:
                errors.append(f"{where}.{key}: must be a whole number of seconds from {low} to {high}")
    return errors


def _accessory_errors(index: int, accessory: Any, app: Any, service_names: list[str]) -> list[str]:
    where = f"app_deploy_accessories[{index}]"
    if not isinstance(accessory, Mapping):
        return [f"{where}: must be a mapping with name, image and tag or digest"]
    errors = []
    name = accessory.get("name")
    if not isinstance(name, str) or not _ACCESSORY_NAME.match(name):
        errors.append(f"{where}.name: {name!r} must be a short lower-case name (a-z 0-9 -, up to 30 characters, "
                      "no - at either end)")
        where_named = where
    else:
        where_named = f"{where} ({name})"
        container = f"{app}-{name}"
        if name in service_names:
            errors.append(f"{where_named}.name: {name!r} is also a service of the app: the release containers "
                          "reach the accessory by its name, give it one of its own")
        colour = re.match(r"^(.*)-(blue|green)$", name)
        if colour:
            errors.append(f"{where_named}.name: the container {container} would be named like a release container "
                          f"(<app>-<service>-<blue|green>{', of the service ' + repr(colour.group(1)) if colour.group(1) in service_names else ''}): "
                          "pick a name that does not end in -blue or -green")
        if re.match(r"^migrate-[0-9]+$", name):
            errors.append(f"{where_named}.name: {container} is how the migration containers are named "
                          "(<app>-migrate-<release>): pick another name")
    if "ports" in accessory:
        errors.append(f"{where_named}.ports: an accessory is never published (Docker's published ports bypass "
                      "UFW): the release containers reach it on the app's network as <name>:<port>; from the "
                      "host use docker exec. Remove ports")
    unknown = sorted(str(k) for k in set(accessory) - _ACCESSORY_KEYS - {"ports"})
    if unknown:
        errors.append(f"{where_named}: unknown keys {unknown} (allowed: {', '.join(sorted(_ACCESSORY_KEYS))})")
    errors += _image_errors(where_named, accessory)
    command = accessory.get("command", [])
    if not (isinstance(command, str) or (c.is_list(command) and all(isinstance(a, str) for a in command))):
        errors.append(f"{where_named}.command: must be a string or a list of strings")
    errors += _environment_errors(f"{where_named}.environment", accessory.get("environment", {}))
    errors += _volumes_errors(where_named, accessory.get("volumes", []))
    if "health" in accessory:
        errors += _accessory_health_errors(f"{where_named}.health", accessory["health"])
    return errors


def _accessories_errors(accessories: Any, app: Any, service_names: list[str]) -> list[str]:
    if not c.is_list(accessories):
        return ["app_deploy_accessories: must be a list of accessories (name, image, tag or digest, ...)"]
    errors = []
    for index, accessory in enumerate(accessories):
        errors += _accessory_errors(index, accessory, app, service_names)
    names = [a.get("name") for a in accessories if isinstance(a, Mapping)]
    doubles = sorted({n for n in names if names.count(n) > 1 and isinstance(n, str)})
    if doubles:
        errors.append(f"app_deploy_accessories: names used twice: {doubles}")
    return errors


OPTIONS: dict[str, c.Check] = {
    "app_deploy_name": c.pattern(_NAME, "a short lower-case name (a-z 0-9 -, 2 to 32 characters)",
                                 bad=("", "Shop", "my app", "-x")),
    "app_deploy_version": c.pattern(r"^[A-Za-z0-9_.+-]{0,64}$", "a release label (letters, digits . _ + -)",
                                    bad=("v 1", "v1;rm"), empty_ok=True),
    "app_deploy_domains": c.Check(lambda v: None if isinstance(v, str) and _DOMAIN.match(v)
                                  else "is not a lower-case domain name", bad=(["Shop.Example.com"], ["a b"]),
                                  each=True, nonempty=True),
    "app_deploy_watch_seconds": c.int_range(0, 3600, "seconds"),
    "app_deploy_drain_seconds": c.int_range(0, 600, "seconds"),
    "app_deploy_rollback_watch_seconds": c.int_range(0, 3600, "seconds"),
    "app_deploy_stop_seconds": c.int_range(1, 600, "seconds"),
    "app_deploy_keep_releases": c.int_range(2, 20),
    "app_deploy_notify_webhook": c.WEBHOOK_URL,
    "app_deploy_lock_timeout_seconds": c.int_range(0, 86400, "seconds"),
    "app_deploy_lock_lease_seconds": c.int_range(60, 7 * 86400, "seconds"),
    "app_deploy_deployer": c.pattern(r"^[^\n\"\\]{0,200}$", "one line of text", bad=("a\nb", "x" * 201)),
}
FREE_FORM: dict[str, str] = {
    "app_deploy_compose": "file (read and checked service by service), service, port, environment checked below",
    "app_deploy_services": "checked key by key below (names, images, tags, digests, environment names, volumes, port)",
    "app_deploy_health": "path, timeout, retries and interval checked below",
    "app_deploy_migration": "service and command checked below",
    "app_deploy_registry": "registry, username, password checked below (the password is never shown)",
    "app_deploy_ports": "blue and green checked below",
    "app_deploy_accessories": "checked key by key below (names and their containers' names, images, tags, digests, "
                              "environment names, volumes, health check; ports refused)",
}
SUBOPTION_BAD: dict[str, tuple[Any, ...]] = {
    "app_deploy_services": ([{"name": "web", "image": "x", "tag": "1", "port": 70000}],
                            [{"name": "web", "image": "Shop/Web:v1", "tag": "1", "port": 80}],
                            [{"name": "web", "image": "x", "port": 80}]),
    "app_deploy_accessories": ([{"name": "db", "image": "postgres", "tag": "16", "ports": ["5432:5432"]}],
                               [{"name": "Db", "image": "postgres", "tag": "16"}],
                               [{"name": "db", "image": "postgres"}]),
}


def app_deploy_errors(variables: Mapping[str, Any], host: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem with the app_deploy role's input."""
    v = c.typed(variables, "app_deploy")
    host = host or {}
    errors: list[str] = c.os_errors(host, "app_deploy") if host.get("distribution") else []
    errors += c.check_options(v, OPTIONS, host)
    services = v.get("app_deploy_services", [])
    compose = v.get("app_deploy_compose") or {}
    if compose and services:
        errors.append("app_deploy_services and app_deploy_compose: give one of them (services described here, "
                      "or your own compose file), not both")
    elif compose:
        errors += compose_errors(compose, host)
        services = _compose_services(compose, host.get("compose_text"))
    else:
        errors += _services_errors(services)
    errors += _health_errors(v.get("app_deploy_health"))
    names = [s.get("name") for s in services if isinstance(s, Mapping)] if c.is_list(services) else []
    errors += _accessories_errors(v.get("app_deploy_accessories", []), v.get("app_deploy_name"), names)
    migration = v.get("app_deploy_migration") or {}
    if migration:
        if not isinstance(migration, Mapping) or set(migration) - {"service", "command"} or not migration.get("command"):
            errors.append("app_deploy_migration: needs command (and optionally service), nothing else")
        elif migration.get("service", _web_name(services)) not in names:
            errors.append(f"app_deploy_migration.service: {migration.get('service')!r} is not one of the services {names}")
    registry = v.get("app_deploy_registry") or {}
    if registry:
        if not isinstance(registry, Mapping) or set(registry) - {"registry", "username", "password"}:
            errors.append("app_deploy_registry: takes registry, username and password")
        else:
            if not registry.get("registry") or c.HOST_NAMES.test(str(registry["registry"]).split("/", maxsplit=1)[0]):
                errors.append("app_deploy_registry.registry: needs the registry's host[:port]")
            if not registry.get("username") or not registry.get("password"):
                errors.append("app_deploy_registry: needs username and password (from vault; never shown)")
            else:
                errors += c.secret_errors("app_deploy_registry.password", registry["password"])
    ports = v.get("app_deploy_ports", {"blue": 18000, "green": 18001})
    if not isinstance(ports, Mapping) or set(ports) != {"blue", "green"}:
        errors.append("app_deploy_ports: needs blue and green")
    else:
        for colour in ("blue", "green"):
            errors += c.PORT.errors(f"app_deploy_ports.{colour}", ports[colour])
        if ports["blue"] == ports["green"]:
            errors.append("app_deploy_ports: blue and green must differ (both releases run side by side)")
        reserved = sorted(p for p in ports.values() if p in (80, 443, 2019))
        if reserved:
            errors.append(f"app_deploy_ports: {reserved} belong to Caddy (80, 443, and 2019 for its admin endpoint); "
                          "the colours need ports of their own on 127.0.0.1")
        else:
            # host: listening (host_probe) and own_ports (what this app's containers publish now: the
            # release that is not live gives its colour back), or the older ports_taken list
            listening = host.get("listening")
            if listening is None and "ports_taken" in host:
                listening = [{"port": c.convert("int", p), "proto": "tcp", "address": "", "process": "another process"}
                             for p in host.get("ports_taken") or []]
            errors += c.port_errors({f"app_deploy_ports.{colour}": (ports[colour], "127.0.0.1") for colour in ("blue", "green")},
                                    listening, (), host.get("ports"),
                                    own_ports=[c.convert("int", p) for p in host.get("own_ports") or []])
    if v.get("app_deploy_tls", "auto") not in ("auto", "internal"):
        errors.append("app_deploy_tls: must be auto or internal")
    if host.get("caddy_sites_dir") is False:
        errors.append("anvil.hetzner.caddy has not run on this host (no /etc/caddy/sites.d): run it first, "
                      "app_deploy adds its site beside Caddy's")
    if v.get("caddy_admin") == "off":
        errors.append("caddy_admin: off makes every switch a Caddy restart (dropped connections); "
                      "app_deploy needs the admin endpoint for graceful reloads")
    return errors


def compose_errors(compose: Any, host: Mapping[str, Any]) -> list[str]:
    """The user's own compose file: ``host`` has ``compose_text`` (the file as read on the
    controller, None when unreadable) and ``compose_v2`` (whether ``docker compose`` is there)."""
    if not isinstance(compose, Mapping):
        return ["app_deploy_compose: must be a mapping with file, service and port"]
    errors = []
    unknown = sorted(str(k) for k in set(compose) - _COMPOSE_KEYS)
    if unknown:
        errors.append(f"app_deploy_compose: unknown keys {unknown} (allowed: {', '.join(sorted(_COMPOSE_KEYS))})")
    for key in ("file", "service", "port"):
        if not compose.get(key):
            errors.append(f"app_deploy_compose.{key}: needed (file: your compose file on the controller, service: "
                          "the one that answers HTTP, port: its port inside the container)")
    if compose.get("port"):
        errors += c.PORT.errors("app_deploy_compose.port", compose["port"])
    errors += _environment_errors("app_deploy_compose.environment", compose.get("environment", {}))
    if host.get("compose_v2") is False:
        errors.append("app_deploy_compose needs Docker Compose v2 (docker compose), which this host does not have "
                      "(Debian 12's docker.io ships none): describe the app in app_deploy_services (no compose "
                      "needed), or install Docker with compose v2 (anvil.hetzner.docker, docker_install_source: "
                      "official)")
    version = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", str(host.get("compose_version") or ""))
    if version and tuple(map(int, version.groups())) < (2, 24, 4):
        errors.append(f"app_deploy_compose needs Docker Compose 2.24.4 or newer (its override replaces your "
                      f"volumes' settings with !override); this host has {host['compose_version']}")
    if compose.get("file") and "compose_text" in host:
        errors += _compose_file_errors(compose, host["compose_text"] if host.get("compose_readable", True) else None)
    return errors


def _compose_file_errors(compose: Mapping[str, Any], text: str | None) -> list[str]:
    where = f"app_deploy_compose.file ({compose['file']})"
    if text is None:
        return [f"{where}: cannot be read on the controller"]
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [f"{where}: is not valid YAML" + (f" (line {mark.line + 1})" if mark else "")]
    if not isinstance(document, Mapping) or not isinstance(document.get("services"), Mapping) \
            or not document["services"]:
        return [f"{where}: has no services"]
    errors = []
    services = document["services"]
    for name, service in services.items():
        if not isinstance(service, Mapping):
            errors.append(f"{where}: service {name!r} is not a mapping")
            continue
        for key, why in _COMPOSE_REFUSED.items():
            if key in service:
                errors.append(f"{where}: service {name!r} has {key}: it {why}")
        if not service.get("image"):
            errors.append(f"{where}: service {name!r} needs an image (from your registry)")
        if service.get("network_mode") == "host":
            errors.append(f"{where}: service {name!r} has network_mode: host: two releases side by side would "
                          "listen on the same ports, and the app must not be reachable except through Caddy")
        replicas = (service.get("deploy") or {}).get("replicas", 1) if isinstance(service.get("deploy"), Mapping) else 1
        if service.get("scale", 1) != 1 or replicas != 1:
            errors.append(f"{where}: service {name!r} asks for more than one replica: app_deploy runs one "
                          "container per service and release")
    if compose.get("service") and compose["service"] not in services:
        errors.append(f"app_deploy_compose.service: {compose['service']!r} is not a service of {compose['file']} "
                      f"({', '.join(sorted(map(str, services)))})")
    return errors


def _compose_services(compose: Any, text: str | None) -> list[dict]:
    """The compose file's services in the shape of app_deploy_services (name, and port for the web one)."""
    try:
        services = (yaml.safe_load(text or "") or {}).get("services") or {}
    except (yaml.YAMLError, AttributeError):
        return []
    if not isinstance(compose, Mapping) or not isinstance(services, Mapping):
        return []
    return [{"name": name, **({"port": compose.get("port")} if name == compose.get("service") else {})}
            for name in services]


def _web_name(services: Any) -> str | None:
    for service in services if c.is_list(services) else []:
        if isinstance(service, Mapping) and "port" in service:
            return service.get("name")
    return None


# ---------------------------------------------------------------------------------------------
# Release bookkeeping.


def fingerprint(services: list[Mapping[str, Any]]) -> str:
    """What makes two releases the same: per service its image id, command, volumes, port and
    environment (as a hash)."""
    canonical = [{k: s.get(k) for k in ("name", "image_id", "command", "volumes", "port", "env_sha")
                  + (("config_sha",) if "config_sha" in s else ())}
                 for s in sorted(services, key=lambda s: s["name"])]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def live_release(history: Mapping[str, Any] | None) -> dict | None:
    for release in (history or {}).get("releases", []):
        if release.get("id") == (history or {}).get("live"):
            return dict(release)
    return None


def app_deploy_plan(wanted: Mapping[str, Any], history: Mapping[str, Any] | None, rollback: bool = False,
                    running: list[str] | None = None) -> dict:
    """What a run does. ``wanted``: {app, version, services: [{name, image, image_id, ...}]};
    ``running``: names of the running containers. Returns {action, reason, release, live}:
    action ``noop`` (the live release is what is wanted and runs), ``deploy`` or ``rollback``,
    or ``refuse`` (rollback with nothing to go back to)."""
    history = history or {"releases": []}
    releases = history.get("releases", [])
    live = live_release(history)
    running = set(running or [])
    next_id = max([r.get("id", 0) for r in releases] + [0]) + 1
    live_runs = bool(live) and all(f"{wanted['app']}-{s['name']}-{live['color']}" in running for s in live["services"])
    if rollback:
        if not live:
            return {"action": "refuse", "reason": "nothing is live: there is no release to go back from", "live": None}
        earlier = [r for r in releases if r.get("id", 0) < live["id"] and r.get("status") in ("retired", "rolled-back")]
        if not earlier:
            return {"action": "refuse", "reason": f"release {live['id']} ({live['version']}) is the first one: "
                                                  "there is no earlier release to go back to", "live": live}
        target = dict(max(earlier, key=lambda r: r["id"]))
        release = {**target, "id": next_id, "rollback_of": live["id"], "from_release": target["id"],
                   "color": "green" if live["color"] == "blue" else "blue"}
        return {"action": "rollback", "reason": f"back from {live['version']} to {target['version']}",
                "release": release, "live": live}
    services = [dict(s) for s in wanted["services"]]
    print_ = fingerprint(services)
    if live and live.get("fingerprint") == print_ and live_runs:
        return {"action": "noop", "reason": f"{live['version']} is live and unchanged", "release": live, "live": live}
    color = "green" if live and live["color"] == "blue" else "blue"
    release = {"id": next_id, "version": wanted["version"], "color": color, "fingerprint": print_,
               "services": services, **({"volumes": dict(wanted["volumes"])} if wanted.get("volumes") else {})}
    reason = "first release" if not live else (
        f"{live['version']} is live but not running" if live.get("fingerprint") == print_ else
        f"{live['version']} -> {wanted['version']}")
    return {"action": "deploy", "reason": reason, "release": release, "live": live if live_runs else None}


def app_deploy_record(history: Mapping[str, Any] | None, release: Mapping[str, Any], status: str,
                      keep: int = 3, when: str = "", by: str = "", reason: str = "") -> dict:
    """The history after a run: the release added with its status ("live" makes it the live one and
    retires (or, for a rollback, marks rolled-back) the one before); ``prune``: the ids of releases
    whose images and files may go (beyond the ``keep`` newest that were live, never the live one or
    the one a rollback would go back to)."""
    history = {"app": (history or {}).get("app", ""), "live": (history or {}).get("live"),
               "releases": [dict(r) for r in (history or {}).get("releases", [])]}
    entry = {**release, "status": status, "time": when, "by": by}
    if reason:
        entry["reason"] = reason
    releases = [r for r in history["releases"] if r["id"] != entry["id"]]
    if status == "live":
        for r in releases:
            if r["id"] == history["live"]:
                r["status"] = "rolled-back" if entry.get("rollback_of") == r["id"] else "retired"
        history["live"] = entry["id"]
    releases.append(entry)
    # the history itself keeps the last HISTORY_LENGTH runs (and always the live release)
    releases = sorted(releases, key=lambda r: r["id"])
    history["releases"] = [r for r in releases[:-HISTORY_LENGTH] if r["id"] == history["live"]] + releases[-HISTORY_LENGTH:]
    was_live = [r for r in history["releases"] if r.get("status") in WAS_LIVE]
    kept = {r["id"] for r in was_live[-keep:]} | ({history["live"]} if history["live"] else set())
    prune = [r["id"] for r in history["releases"] if r["id"] not in kept]
    # failed releases are kept in the history (what happened), their images and files go
    return {"history": history, "prune": prune}


def app_deploy_compose_services(config: Any, compose: Mapping[str, Any], text: str = "") -> list[dict]:
    """The services of the user's compose file in the shape of app_deploy_services: name, image and
    tag or digest (split from the image reference), port for the web service, and ``config_sha``
    (the service's definition without its image, so that a changed setting makes a new release).
    ``config``: ``docker compose config --format json`` output (interpolated); without it (check
    mode before Docker is installed) the file as written. ``restart``: the service's own restart
    policy (none: app_deploy sets unless-stopped)."""
    if isinstance(config, str) and config.strip():
        document = json.loads(config)
    else:
        document = yaml.safe_load(text or "") or {}
    services = []
    for name, service in sorted((document.get("services") or {}).items()):
        reference = str(service.get("image", ""))
        entry: dict[str, Any] = {"name": name}
        if "@" in reference:
            entry["image"], entry["digest"] = reference.split("@", 1)
        elif ":" in reference.rsplit("/", 1)[-1]:
            entry["image"], entry["tag"] = reference.rsplit(":", 1)
        else:
            entry["image"], entry["tag"] = reference, "latest"
        if name == compose.get("service"):
            entry["port"] = compose.get("port")
        definition = {k: v for k, v in service.items() if k != "image"}
        entry["config_sha"] = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()
        entry["restart"] = service.get("restart")
        # the networks the service is on (the override adds the accessories' one to them), none with
        # a network_mode (which takes no networks)
        networks = service.get("networks") or ["default"]
        entry["networks"] = None if service.get("network_mode") else sorted(map(str, networks))
        services.append(entry)
    return services


def _short_sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def accessory_volumes(app: str, accessory: Mapping[str, Any]) -> list[str]:
    """The accessory's volumes as Docker gets them: a named volume ``data:/path`` is the app's
    ``<app>-<accessory>-data``; a host path stays as it is."""
    out = []
    for volume in accessory.get("volumes") or []:
        source, rest = volume.split(":", 1)
        out.append(volume if source.startswith("/") else f"{app}-{accessory['name']}-{source}:{rest}")
    return out


def accessory_health(accessory: Mapping[str, Any]) -> dict | None:
    """The accessory's health check with the role's defaults, in whole seconds (None without one)."""
    if not accessory.get("health"):
        return None
    health = {**ACCESSORY_HEALTH_DEFAULTS, **accessory["health"]}
    return {"test": health["test"], **{k: int(c.convert("int", health[k])) for k in ACCESSORY_HEALTH_DEFAULTS}}


def _accessory_parts(app: str, accessory: Mapping[str, Any]) -> dict[str, Any]:
    """Every part of an accessory's description that, changed, recreates its container."""
    image = accessory["image"] + (f"@{accessory['digest']}" if accessory.get("digest") else f":{accessory['tag']}")
    return {"image": image, "command": accessory.get("command") or None,
            "environment": {str(k): str(v) for k, v in (accessory.get("environment") or {}).items()},
            "volumes": accessory_volumes(app, accessory), "health": accessory_health(accessory)}


def _container_name(container: Mapping[str, Any]) -> str:
    names = container.get("Names") or [""]
    return str(names[0]).lstrip("/")


def app_deploy_accessories_plan(accessories: list[Mapping[str, Any]], app: str,
                                containers: list[Mapping[str, Any]] | None = None) -> dict:
    """What a run does with each accessory. ``containers``: Docker's list of the containers whose
    name starts with ``<app>-`` (docker_host_info, verbose: Names, State, Status, Labels, Mounts).

    Per accessory (never its environment, command or health test: they may hold secrets):
    ``action`` ``create`` (no container yet), ``recreate`` (a part of its description changed:
    image, command, environment, volumes, health), ``start`` (there and unchanged, not running) or
    ``keep``; ``reason``; ``labels`` (anvil.accessory=<app>, its name, image, one hash per part);
    ``volumes`` as Docker gets them, ``named_volumes``; ``wait``/``wait_seconds``: whether and how
    long the run waits for Docker to report it healthy (start_period + retries x interval).
    ``remove``: this app's accessory containers no longer described (their volumes are kept).
    ``refused``: described accessories whose container name another container already has."""
    by_name = {_container_name(ct): ct for ct in containers or []}
    wanted, refused = [], []
    for accessory in accessories or []:
        name = accessory["name"]
        container = f"{app}-{name}"
        parts = _accessory_parts(app, accessory)
        labels = {ACCESSORY_LABEL: app, f"{ACCESSORY_LABEL}.name": name, f"{ACCESSORY_LABEL}.image": parts["image"],
                  **{f"{ACCESSORY_LABEL}.sha.{part}": _short_sha(parts[part]) for part in ACCESSORY_PARTS}}
        existing = by_name.get(container)
        existing_labels = (existing or {}).get("Labels") or {}
        if existing is not None and existing_labels.get(ACCESSORY_LABEL) != app:
            refused.append(f"app_deploy_accessories ({name}): a container {container} exists that app_deploy did not "
                           f"make for the accessory {name} of {app}: rename or remove it, or give the accessory "
                           "another name")
            continue
        if existing is None:
            action, reason = "create", "not there yet"
        else:
            changed = [part for part in ACCESSORY_PARTS
                       if existing_labels.get(f"{ACCESSORY_LABEL}.sha.{part}") != labels[f"{ACCESSORY_LABEL}.sha.{part}"]]
            state = str(existing.get("State", ""))
            if changed:
                action = "recreate"
                old_image = existing_labels.get(f"{ACCESSORY_LABEL}.image", "?")
                what = [f"image changed ({old_image} -> {parts['image']})" if part == "image" else part
                        for part in changed]
                reason = "its " + ", ".join(what) + (" changed" if changed != ["image"] else "")
            elif state != "running":
                action, reason = "start", f"unchanged, {state or 'not running'}: started again"
            else:
                action, reason = "keep", "running, unchanged"
        health = parts["health"]
        healthy = existing is not None and "(healthy)" in str(existing.get("Status", ""))
        wanted.append({
            "name": name, "container": container, "action": action, "reason": reason, "image": parts["image"],
            "volumes": parts["volumes"], "labels": labels,
            "named_volumes": [v.split(":", 1)[0] for v in parts["volumes"] if not v.startswith("/")],
            # the health check's timing (its test may hold a secret: the tasks take it from the description)
            "health_timing": {k: v for k, v in health.items() if k != "test"} if health else None,
            "wait": bool(health) and (action != "keep" or not healthy),
            "wait_seconds": (health["start_period"] + health["retries"] * health["interval"]) if health else 0})
    described = {a["name"] for a in accessories or []}
    remove = [{"name": (ct.get("Labels") or {}).get(f"{ACCESSORY_LABEL}.name", ""), "container": _container_name(ct),
               "volumes": sorted(str(m.get("Name")) for m in ct.get("Mounts") or []
                                 if m.get("Type") == "volume" and m.get("Name"))}
              for ct in containers or []
              if (ct.get("Labels") or {}).get(ACCESSORY_LABEL) == app
              and (ct.get("Labels") or {}).get(f"{ACCESSORY_LABEL}.name") not in described]
    return {"accessories": wanted, "remove": sorted(remove, key=lambda r: r["container"]), "refused": refused}


def app_deploy_redact(text: str, secrets: Any, min_length: int = 1) -> str:
    """``text`` with every value of the mapping ``secrets`` (or of each mapping of a list, e.g. the
    accessories' environments) of at least ``min_length`` characters replaced by ***."""
    mappings = secrets if isinstance(secrets, (list, tuple)) else [secrets]
    values = (str(v) for mapping in mappings for v in (mapping or {}).values())
    for value in sorted((v for v in values if v and len(v) >= min_length), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def app_deploy_log_tail(result: Mapping[str, Any], lines: int = 20) -> str:
    """The last lines a ``docker logs`` command printed (its stdout and stderr), on one line."""
    out = list(result.get("stdout_lines", [])) + list(result.get("stderr_lines", []))
    return " / ".join(out[-lines:])[-1500:] or "(no output)"


def app_deploy_metrics(history: Mapping[str, Any], app: str, status: str, duration: int, now: int) -> str:
    """The textfile (node_exporter contract) for the app after a run."""
    live = live_release(history)
    was_live = [r for r in history.get("releases", []) if r.get("status") in WAS_LIVE and r.get("epoch")]
    label = _label("app", app)
    lines = [
        "# HELP anvil_deploy_last_run_success 1 when the last deploy or rollback put its release live, 0 when it failed.",
        "# TYPE anvil_deploy_last_run_success gauge",
        f"anvil_deploy_last_run_success{{{label}}} {1 if status == 'live' else 0}",
        "# TYPE anvil_deploy_last_run_timestamp_seconds gauge",
        f"anvil_deploy_last_run_timestamp_seconds{{{label}}} {now}",
        "# TYPE anvil_deploy_last_run_duration_seconds gauge",
        f"anvil_deploy_last_run_duration_seconds{{{label}}} {duration}",
    ]
    if was_live:
        lines += ["# TYPE anvil_deploy_last_success_timestamp_seconds gauge",
                  f"anvil_deploy_last_success_timestamp_seconds{{{label}}} {max(r['epoch'] for r in was_live)}"]
    if live:
        lines += ["# HELP anvil_deploy_live_info The release that takes the traffic.",
                  "# TYPE anvil_deploy_live_info gauge",
                  f"anvil_deploy_live_info{{{label},{_label('version', live['version'])},"
                  f"{_label('release', str(live['id']))},{_label('color', live['color'])}}} 1"]
    return "\n".join(lines) + "\n"


def _label(name: str, value: str) -> str:
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{name}="{escaped}"'


class FilterModule:
    """anvil.hetzner app_deploy filters."""

    def filters(self) -> dict[str, Any]:
        return {"app_deploy_errors": app_deploy_errors, "app_deploy_plan": app_deploy_plan,
                "app_deploy_record": app_deploy_record, "app_deploy_log_tail": app_deploy_log_tail,
                "app_deploy_compose_services": app_deploy_compose_services, "app_deploy_redact": app_deploy_redact,
                "app_deploy_metrics": app_deploy_metrics, "app_deploy_accessories_plan": app_deploy_accessories_plan}
