# Copyright (c) 2026 anvil.hetzner contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: hcloud
short_description: Hetzner Cloud servers as inventory, fast, with label-based groups
version_added: 0.1.0
description:
  - Reads servers from the Hetzner Cloud API of one or several projects and adds them as hosts,
    with host variables for every attribute an operator templates on and ready-made groups
    (by the C(role) label, location, network zone, server type, OS, status, project).
  - The configuration file name must end in C(.hcloud.yml) or C(.hcloud.yaml).
  - Option names match the C(hetzner.hcloud.hcloud) inventory where the two overlap, so switching
    is a change of the C(plugin) line (see the collection README for the few differences).
  - Result pages are fetched concurrently (option O(concurrency)); server attributes come from the
    server list itself (no request per server or per network), so one run costs one request per
    50 servers plus one per 50 networks, per project, and none at all on a cache hit.
  - HTTP 429 answers are retried after the time the API gives in C(RateLimit-Reset), for at most
    O(rate_limit_max_wait) seconds in total.
author:
  - anvil.hetzner contributors (@anvil-hetzner)
requirements:
  - hcloud >= 2.0 (the Hetzner Cloud Python library)
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks the file as an P(anvil.hetzner.hcloud#inventory) configuration.
    required: true
    type: str
    choices: [anvil.hetzner.hcloud]
  api_token:
    description:
      - API token of the project (read-only tokens are enough).
      - May be a template, for example a vault variable or C({{ lookup('env', 'MY_TOKEN') }}).
      - Never written to output or logs.
      - Required unless every entry of O(projects) has its own token.
    type: str
    aliases: [token]
    env:
      - name: HCLOUD_TOKEN
  api_endpoint:
    description: Base URL of the Hetzner Cloud API.
    type: str
    default: https://api.hetzner.cloud/v1
    env:
      - name: HCLOUD_ENDPOINT
  project:
    description:
      - Name of the project given by O(api_token); becomes the C(project) host variable and the
        C(project_<name>) group. Ignored when O(projects) is set.
    type: str
    default: default
  projects:
    description:
      - Several Hetzner Cloud projects in one inventory. Each entry has C(name) (letters, digits,
        C(-), C(_)), C(api_token) (templated; defaults to O(api_token)) and optionally C(api_endpoint).
      - With more than one project, hosts are named C(<server name>.<project>) unless O(hostname)
        is set, so servers with the same name in two projects stay two hosts.
    type: list
    elements: dict
    default: []
  label_selector:
    description:
      - Only servers whose labels match this selector (evaluated by the API), for example
        C(env=prod,role in (web,db),!decommissioned).
    type: str
    default: ""
  status:
    description: Only servers in one of these states (evaluated by the API).
    type: list
    elements: str
    default: []
    choices: [initializing, starting, running, stopping, "off", deleting, migrating, rebuilding, unknown]
  locations:
    description: Only servers in these locations (C(fsn1), C(nbg1), C(hel1), C(ash), C(hil), C(sin)...).
    type: list
    elements: str
    default: []
  network_zones:
    description: Only servers in these network zones (C(eu-central), C(us-east), ...).
    type: list
    elements: str
    default: []
  types:
    description: Only servers of these server types (C(cx22), C(cax21), ...).
    type: list
    elements: str
    default: []
  images:
    description: Only servers created from these images, by name (C(debian-12)) or OS flavor (C(debian)).
    type: list
    elements: str
    default: []
  network:
    description:
      - Name or ID of a private network. Only servers attached to it are added, and the
        C(private_ipv4) host variable and O(connect_with=private_ipv4) use the address in it.
      - Without it, C(private_ipv4) is the address in the server's first private network.
    type: str
    default: ""
  connect_with:
    description:
      - Where C(ansible_host) comes from, tried in order until the server has a value, so that
        IPv6-only servers and servers on a private network only still get an address.
      - A single value works as in C(hetzner.hcloud.hcloud).
      - C(private_ipv4) is the address in O(network), or in the first private network when
        O(network) is not set. C(hostname) is the server name; C(ipv4_dns_ptr) the reverse DNS name.
      - Servers for which no method yields a value get no C(ansible_host) (one warning lists them).
    type: list
    elements: str
    default: [public_ipv4, public_ipv6, private_ipv4]
  hostname:
    description:
      - Template for the inventory host name; the host variables (with O(hostvars_prefix)) and extra
        vars are available. Default is the server name (C(<server>.<project>) with several projects).
      - Two servers that end up with the same host name are an error, never a silent merge.
    type: str
  hostvars_prefix:
    description: Prefix of the host variables that come from the API.
    type: str
    default: hcloud_
  hostvars_suffix:
    description: Suffix of the host variables that come from the API.
    type: str
    default: ""
  group:
    description: Group that every server of this inventory source joins.
    type: str
    default: hcloud
  group_by:
    description:
      - Groups created without O(keyed_groups). C(labels) is the label groups described in
        O(group_by_labels); the others create C(location_fsn1), C(network_zone_eu_central),
        C(server_type_cx22), C(os_debian) and C(os_debian_12), C(status_running), C(project_prod).
    type: list
    elements: str
    default: [labels, location, network_zone, server_type, image_os, status, project]
    choices: [labels, location, network_zone, server_type, image_os, status, project]
  group_by_labels:
    description:
      - Label keys whose values become group names, for example C(role=web) puts the host in C(web).
      - A value holding several names separated by O(label_value_separator) (C(role=web.worker))
        puts the host in each (C(web) and C(worker)). Characters not allowed in group names become C(_).
    type: list
    elements: str
    default: [role]
  label_value_separator:
    description: Separator between several group names in one label value (label values cannot hold commas or spaces).
    type: str
    default: "."
  label_group_prefix:
    description: Prefix for the groups made from label values (empty by default, so C(role=web) gives C(web)).
    type: str
    default: ""
  concurrency:
    description: How many result pages are fetched at the same time per project (1 to 32).
    type: int
    default: 10
  timeout:
    description: Seconds to wait for one API answer.
    type: float
    default: 30
  rate_limit_max_wait:
    description:
      - Longest total time, in seconds, spent waiting for the API's rate limit to reset after
        HTTP 429 answers. C(0) fails at the first 429.
    type: float
    default: 60
"""

EXAMPLES = r"""
# inventories/prod.hcloud.yml -- token from HCLOUD_TOKEN; production servers that are running.
plugin: anvil.hetzner.hcloud
label_selector: env=prod
status: [running]

---
# Token from the vault, private network first (servers behind a bastion), groups by role label.
plugin: anvil.hetzner.hcloud
api_token: "{{ vault_hcloud_token }}"
network: app-net
connect_with: [private_ipv4, public_ipv4]
group_by_labels: [role, tier]

---
# Two projects; hosts are named web-1.prod, web-1.staging.
plugin: anvil.hetzner.hcloud
projects:
  - name: prod
    api_token: "{{ lookup('ansible.builtin.env', 'HCLOUD_TOKEN_PROD') }}"
  - name: staging
    api_token: "{{ lookup('ansible.builtin.env', 'HCLOUD_TOKEN_STAGING') }}"
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: .cache/inventory
cache_timeout: 300

---
# Constructed options work as in every inventory plugin.
plugin: anvil.hetzner.hcloud
compose:
  ansible_user: "'deploy'"
  base_ssh_port: hcloud_labels.ssh_port | default(22) | int
keyed_groups:
  - key: hcloud_labels.team | default('none')
    prefix: team
groups:
  arm: hcloud_architecture == 'arm'
"""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.vars import combine_vars

from ansible_collections.anvil.hetzner.plugins.plugin_utils.hcloud import (
    CONNECT_WITH,
    GROUP_BY,
    SERVER_STATUSES,
    ansible_host,
    auto_groups,
    default_hostname,
    prefixed,
    rate_limit_wait,
    server_matches,
    server_vars,
)

try:
    import requests
    from hcloud import APIException, Client

    HAS_HCLOUD = True
    HCLOUD_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the controller's Python
    HAS_HCLOUD = False
    HCLOUD_IMPORT_ERROR = exc

PER_PAGE = 50  # the API's maximum
_PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_PROJECT_KEYS = {"name", "api_token", "token", "api_endpoint"}
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"\)]+)")


class HcloudInventoryError(AnsibleError):
    """An error the user can act on (no traceback needed)."""


class _Fetcher:
    """Reads one project's servers and networks: page 1 first, the remaining pages concurrently.

    Each worker thread has its own hcloud Client (requests sessions are not shared between
    threads). The library's own retry is turned off so that 429 answers are retried here, after
    the `RateLimit-Reset` the API sends, within one wait budget shared by all threads.
    """

    def __init__(self, name: str, token: str, endpoint: str, *, timeout: float, concurrency: int,
                 max_wait: float, version: str, warn: Any = None):
        self.name = name
        self._warn = warn
        self.endpoint = endpoint.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._concurrency = concurrency
        self._max_wait = max_wait
        self._version = version
        self._local = threading.local()
        self._lock = threading.Lock()
        self._not_before = 0.0
        self._waited = 0.0
        self.requests = 0

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = Client(token=self._token, api_endpoint=self.endpoint, application_name="anvil.hetzner",
                            application_version=self._version, timeout=self._timeout)
            base = getattr(client, "_client", None)
            if base is not None and hasattr(base, "_retry_max_retries"):
                base._retry_max_retries = 0
            session = getattr(base, "_session", None)
            local = self._local
            local.headers = {}
            if session is not None:
                session.hooks["response"].append(lambda response, *_a, **_k: setattr(local, "headers", response.headers))
            local.client = client
        return client

    def _wait_turn(self) -> None:
        delay = self._not_before - time.time()
        if delay > 0:
            time.sleep(delay)

    def _throttled(self) -> None:
        """A 429: wait until RateLimit-Reset if the budget allows, else fail with when it resets."""
        now = time.time()
        wait = rate_limit_wait(getattr(self._local, "headers", {}) or {}, now)
        if wait is None:
            wait = 1.0
        wait = max(wait, 0.05)
        with self._lock:
            until = now + wait
            extension = max(0.0, until - max(self._not_before, now))
            if self._waited + extension > self._max_wait:
                reset = time.strftime("%H:%M:%S UTC", time.gmtime(until))
                raise HcloudInventoryError(
                    f"Hetzner Cloud API rate limit reached for project '{self.name}' (HTTP 429); it resets at "
                    f"{reset}, in {wait:.0f}s, which is more than rate_limit_max_wait={self._max_wait:g}s allows "
                    f"(waited {self._waited:.1f}s already). Raise rate_limit_max_wait, enable the inventory cache, "
                    "or run again later.") from None
            self._waited += extension
            self._not_before = max(self._not_before, until)

    def get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        timeouts = 0
        while True:
            self._wait_turn()
            with self._lock:
                self.requests += 1
            try:
                return self._client().request("GET", path, params=params)
            except APIException as exc:
                if exc.code in ("rate_limit_exceeded", 429):
                    self._throttled()
                    continue
                raise self._api_error(exc, path, params) from None
            except requests.exceptions.Timeout as exc:
                timeouts += 1
                if timeouts <= 2:
                    continue
                raise HcloudInventoryError(
                    f"the Hetzner Cloud API at {self.endpoint} did not answer within {self._timeout:g}s "
                    f"(project '{self.name}', {path}, 3 attempts); raise the timeout option or check the network"
                ) from None
            except requests.exceptions.RequestException as exc:
                reason = _ERRNO.search(str(exc))
                raise HcloudInventoryError(
                    f"cannot reach the Hetzner Cloud API at {self.endpoint} (project '{self.name}'): "
                    f"{reason.group(1).strip() if reason else type(exc).__name__}; check api_endpoint / "
                    "HCLOUD_ENDPOINT and the network") from None

    def _api_error(self, exc: Any, path: str, params: dict[str, Any]) -> HcloudInventoryError:
        code = exc.code
        if code in ("unauthorized", 401):
            return HcloudInventoryError(
                f"Hetzner Cloud project '{self.name}' rejected the API token (HTTP 401 unauthorized) at "
                f"{self.endpoint} ({exc.message}): check api_token / HCLOUD_TOKEN for this project")
        if code in ("forbidden", 403):
            return HcloudInventoryError(
                f"the API token of Hetzner Cloud project '{self.name}' may not read {path} (HTTP 403 forbidden)")
        if code == "invalid_input" and "label_selector" in params:
            return HcloudInventoryError(
                f"the Hetzner Cloud API refused label_selector {params['label_selector']!r} of project "
                f"'{self.name}': {exc.message}")
        if code in ("not_found", 404):
            return HcloudInventoryError(
                f"{self.endpoint}{path} was not found (HTTP 404): is api_endpoint the Hetzner Cloud API "
                "(https://api.hetzner.cloud/v1)?")
        return HcloudInventoryError(
            f"the Hetzner Cloud API at {self.endpoint} answered {path} for project '{self.name}' with an "
            f"error: {exc.message} ({code})")

    def get_all(self, path: str, key: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        params = dict(params or {})
        first = self.get(path, {**params, "page": 1, "per_page": PER_PAGE})
        items = list(first.get(key) or [])
        pagination = (first.get("meta") or {}).get("pagination") or {}
        last = int(pagination.get("last_page") or 1)
        remaining = (getattr(self._local, "headers", None) or {}).get("RateLimit-Remaining")
        if self._warn and remaining is not None and remaining.isdigit() and int(remaining) < last - 1:
            self._warn(f"anvil.hetzner.hcloud: project '{self.name}' has {remaining} API requests left in its rate "
                       f"limit and {path} needs {last - 1} more; waiting for the limit up to rate_limit_max_wait "
                       f"({self._max_wait:g}s). The inventory cache avoids this.")
        if last > 1:
            workers = max(1, min(self._concurrency, last - 1))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"hcloud-{self.name}") as pool:
                pages = pool.map(lambda page: self.get(path, {**params, "page": page, "per_page": PER_PAGE}),
                                 range(2, last + 1))
                for page in pages:
                    items.extend(page.get(key) or [])
        # A server created or deleted while paging shifts entries between pages: keep each ID once.
        seen: set[int] = set()
        unique = []
        for item in items:
            if item["id"] not in seen:
                seen.add(item["id"])
                unique.append(item)
        return unique


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "anvil.hetzner.hcloud"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith((".hcloud.yml", ".hcloud.yaml"))

    # -- configuration ---------------------------------------------------------------------------
    def _template(self, value: Any, option: str) -> str:
        try:
            result = self.templar.template(value)
        except AnsibleError as exc:
            raise AnsibleParserError(f"{option}: the template could not be rendered: {to_native(exc.message)}") from exc
        return "" if result is None else str(result)

    def _settings(self) -> dict[str, Any]:
        """Every option read and checked before any request, errors naming the option."""
        s: dict[str, Any] = {}
        for name in ("label_selector", "locations", "network_zones", "types", "images", "hostname",
                     "hostvars_prefix", "hostvars_suffix", "group", "group_by", "group_by_labels",
                     "label_value_separator", "label_group_prefix", "status", "network", "concurrency",
                     "timeout", "rate_limit_max_wait", "compose", "groups", "keyed_groups", "strict"):
            s[name] = self.get_option(name)

        connect_with = self.get_option("connect_with") or []
        bad = [m for m in connect_with if m not in CONNECT_WITH]
        if bad or not connect_with:
            raise AnsibleParserError(
                f"connect_with: {', '.join(map(repr, bad)) or 'empty'} is not valid; use one or more of "
                f"{', '.join(CONNECT_WITH)}")
        s["connect_with"] = list(connect_with)
        for option, allowed in (("status", SERVER_STATUSES), ("group_by", GROUP_BY)):
            bad = [v for v in s[option] or [] if v not in allowed]
            if bad:
                raise AnsibleParserError(f"{option}: {', '.join(map(repr, bad))} is not valid; use any of {', '.join(allowed)}")
        if not 1 <= s["concurrency"] <= 32:
            raise AnsibleParserError(f"concurrency: {s['concurrency']} is out of range 1..32")
        if s["timeout"] <= 0:
            raise AnsibleParserError(f"timeout: must be a positive number of seconds, got {s['timeout']}")
        if s["rate_limit_max_wait"] < 0:
            raise AnsibleParserError(f"rate_limit_max_wait: must be >= 0 seconds, got {s['rate_limit_max_wait']}")
        if not s["group"]:
            raise AnsibleParserError("group: must not be empty")

        default_token = self.get_option("api_token")
        default_endpoint = self.get_option("api_endpoint")
        projects: list[dict[str, str]] = []
        raw_projects = self.get_option("projects") or []
        if raw_projects:
            for index, entry in enumerate(raw_projects):
                where = f"projects[{index}]"
                if not isinstance(entry, dict):
                    raise AnsibleParserError(f"{where}: must be a mapping with name and api_token, got {type(entry).__name__}")
                unknown = set(entry) - _PROJECT_KEYS
                if unknown:
                    raise AnsibleParserError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                                             f"allowed: name, api_token, api_endpoint")
                name = entry.get("name")
                if not isinstance(name, str) or not _PROJECT_NAME.match(name):
                    raise AnsibleParserError(f"{where}.name: {name!r} is not a valid project name "
                                             "(letters, digits, '-', '_'; at most 63 characters)")
                token = entry.get("api_token", entry.get("token", default_token))
                projects.append({"name": name, "token": token, "endpoint": entry.get("api_endpoint") or default_endpoint,
                                 "where": f"{where}.api_token"})
            names = [p["name"] for p in projects]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise AnsibleParserError(f"projects: duplicate project name(s) {', '.join(dupes)}")
        else:
            name = self.get_option("project")
            if not _PROJECT_NAME.match(name or ""):
                raise AnsibleParserError(f"project: {name!r} is not a valid project name (letters, digits, '-', '_')")
            projects.append({"name": name, "token": default_token, "endpoint": default_endpoint,
                             "where": "api_token"})
        for project in projects:
            if project["token"] in (None, ""):
                raise AnsibleParserError(
                    f"{project['where']}: no API token for project '{project['name']}'; set api_token (or the "
                    "HCLOUD_TOKEN environment variable)")
            project["token"] = self._template(project["token"], project["where"]).strip()
            if not project["token"]:
                raise AnsibleParserError(f"{project['where']}: the token of project '{project['name']}' is empty")
            if not re.match(r"^https?://", project["endpoint"] or ""):
                raise AnsibleParserError(f"api_endpoint: {project['endpoint']!r} is not an http(s) URL")
        s["projects"] = projects
        return s

    # -- fetching ---------------------------------------------------------------------------------
    def _fetch(self, s: dict[str, Any]) -> list[dict[str, Any]]:
        """Host records (unprefixed host variables plus ansible_host) for every selected server."""
        from ansible_collections.anvil.hetzner.plugins.plugin_utils.version import COLLECTION_VERSION

        params: dict[str, Any] = {}
        if s["label_selector"]:
            params["label_selector"] = s["label_selector"]
        if s["status"]:
            params["status"] = s["status"]
        fetchers = [_Fetcher(p["name"], p["token"], p["endpoint"], timeout=s["timeout"],
                             concurrency=s["concurrency"], max_wait=s["rate_limit_max_wait"],
                             version=COLLECTION_VERSION, warn=self.display.warning) for p in s["projects"]]

        # Networks and server pages of every project in parallel; each list paginates concurrently.
        with ThreadPoolExecutor(max_workers=2 * len(fetchers), thread_name_prefix="hcloud") as pool:
            network_jobs = [pool.submit(f.get_all, "/networks", "networks") for f in fetchers]
            server_jobs = [pool.submit(f.get_all, "/servers", "servers", params) for f in fetchers]
            results = [(f, n.result(), sv.result()) for f, n, sv in zip(fetchers, network_jobs, server_jobs)]

        records: list[dict[str, Any]] = []
        network_found = False
        multi = len(fetchers) > 1
        for fetcher, networks, servers in results:
            self.display.vvv(f"anvil.hetzner.hcloud: project '{fetcher.name}': {len(servers)} servers, "
                             f"{len(networks)} networks, {fetcher.requests} API requests")
            names = {n["id"]: n["name"] for n in networks}
            network_id = None
            if s["network"]:
                wanted = str(s["network"])
                network_id = next((n["id"] for n in networks if n["name"] == wanted or str(n["id"]) == wanted), None)
                if network_id is None:
                    self.display.vv(f"anvil.hetzner.hcloud: project '{fetcher.name}' has no network {wanted!r}")
                    continue
                network_found = True
            for server in servers:
                if not server_matches(server, locations=s["locations"], network_zones=s["network_zones"],
                                      types=s["types"], images=s["images"], network_id=network_id):
                    continue
                hvars = server_vars(server, names, fetcher.name, network_id)
                hvars["_hostname"] = default_hostname(server["name"], fetcher.name, multi)
                records.append(hvars)
        if s["network"] and not network_found:
            raise HcloudInventoryError(
                f"network: no network named or numbered {s['network']!r} in project(s) "
                f"{', '.join(repr(f.name) for f in fetchers)}")
        return records

    # -- populating -------------------------------------------------------------------------------
    def _populate(self, records: list[dict[str, Any]], s: dict[str, Any]) -> None:
        inventory = self.inventory
        top = inventory.add_group(s["group"])
        prefix, suffix = s["hostvars_prefix"] or "", s["hostvars_suffix"] or ""
        constructed = bool(s["compose"] or s["groups"] or s["keyed_groups"])
        strict = s["strict"]
        known_groups: set[str] = {top}
        owners: dict[str, str] = {}
        unaddressed: list[str] = []
        for record in records:
            hvars = {k: v for k, v in record.items() if not k.startswith("_")}
            host_vars = prefixed(hvars, prefix, suffix)
            if s["hostname"]:
                self.templar.available_variables = combine_vars(self._vars, host_vars)
                hostname = self._template(s["hostname"], "hostname")
            else:
                hostname = record["_hostname"]
            owner = f"server {hvars['name']} (id {hvars['id']}, project {hvars['project']})"
            if hostname in owners:
                raise HcloudInventoryError(
                    f"hostname: {owners[hostname]} and {owner} would both be host {hostname!r}; make the hostname "
                    "template unique (include hcloud_id or hcloud_project)")
            owners[hostname] = owner
            inventory.add_host(hostname, group=top)
            for key, value in host_vars.items():
                inventory.set_variable(hostname, key, value)
            address, _method = ansible_host(hvars, s["connect_with"])
            if address:
                inventory.set_variable(hostname, "ansible_host", address)
            else:
                unaddressed.append(hostname)
            for group in auto_groups(hvars, s["group_by"], s["group_by_labels"], s["label_value_separator"],
                                     s["label_group_prefix"]):
                if group not in known_groups:
                    inventory.add_group(group)
                    known_groups.add(group)
                inventory.add_child(group, hostname)
            if constructed:
                host_all = inventory.get_host(hostname).get_vars()
                self._set_composite_vars(s["compose"], host_all, hostname, strict=strict)
                host_all = inventory.get_host(hostname).get_vars()
                self._add_host_to_composed_groups(s["groups"], host_all, hostname, strict=strict)
                self._add_host_to_keyed_groups(s["keyed_groups"], host_all, hostname, strict=strict)
        if unaddressed and "ansible_host" not in (s["compose"] or {}):
            shown = ", ".join(unaddressed[:5]) + (f" and {len(unaddressed) - 5} more" if len(unaddressed) > 5 else "")
            self.display.warning(
                f"anvil.hetzner.hcloud: {len(unaddressed)} server(s) have no address for connect_with "
                f"{s['connect_with']} and get no ansible_host: {shown}")

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        if not HAS_HCLOUD:
            raise AnsibleParserError(f"anvil.hetzner.hcloud needs the hcloud Python library on the controller "
                                     f"(pip install hcloud): {HCLOUD_IMPORT_ERROR}")
        self.templar.available_variables = self._vars
        self._read_config_data(path)
        settings = self._settings()

        cache_key = self.get_cache_key(path)
        records = None
        if self.get_option("cache") and cache:
            try:
                records = self._cache[cache_key]
            except KeyError:
                records = None
        try:
            if records is None:
                records = self._fetch(settings)
                if self.get_option("cache"):
                    self._cache[cache_key] = records
            self._populate(records, settings)
        except HcloudInventoryError as exc:
            raise AnsibleParserError(to_native(exc.message)) from None
