"""What makes a sandbox resource real: the interface between the API (records) and the machines.

The API side (server.py and the write handlers) owns every record: IDs, names, labels, IP
allocation, statuses, actions. When an action runs, it calls the project's backend to make the
change real, then marks the action `success`, or `error` with the code of the `BackendError` the
backend raised. A backend never invents API state: every value it needs (addresses, key texts,
rules) arrives as an argument, already allocated by the API.

Two implementations:
- `RecordBackend` (here): does nothing; the sandbox is a pure record keeper (unit tests, the
  inventory benchmarks with 10 000 servers).
- `DockerBackend` (docker_backend.py): a server is a systemd container booted from a test image
  with cloud-init (NoCloud seed), a network is a Docker network, a Cloud Firewall is packet
  filtering in the server's network namespace, a volume is a directory mounted into the server,
  a load balancer is a proxy process forwarding to healthy targets.

Every method is called from an action worker thread, one action at a time per resource (the API
serialises actions on one resource and answers `locked` meanwhile); methods on different resources
may run at the same time. (The API answers network create/delete and volume delete without an
action, as Hetzner does: those are called inside the request, and a BackendError there is a 500
that changes nothing.) Every method is bounded in time (a hung Docker call raises BackendError).

`create_server` creates AND boots the machine. The API then calls `power_on` for the create's
`start_server` action, or `power_off(graceful=False)` when `start_after_create` is false: both are
no-ops for a machine already in that state. Every removal (`delete_server`, `detach_volume`,
`delete_network`, ...) succeeds for a machine or resource that never came to exist (a create the
sandbox's fault injection stopped half-way has no machine behind it).
All IDs are the API's integer IDs; `project` is the project name (resources of two projects never
share a Docker object).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class BackendError(Exception):
    """A change that could not be made real; `code` becomes the action's error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class ServerSpec:
    """Everything a server boot needs, resolved by the API."""

    project: str
    server_id: int
    name: str
    image: str  # image name, "debian-12" / "debian-13" / "ubuntu-24.04" ...
    ssh_keys: list[str]  # public key texts as stored on the ssh_key records
    user_data: str | None
    public_ipv4: str | None  # None when public_net.enable_ipv4 is false
    public_ipv6: str | None  # the server's ::1 address of its /64, None when disabled
    private: list[tuple[int, str]] = field(default_factory=list)  # (network id, ip) at creation
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class FirewallRule:
    """One rule of the API's `rules` list, normalised (direction in/out, protocol tcp/udp/icmp/esp/gre)."""

    direction: str
    protocol: str
    port: str | None  # "22", "80-85", "any" or None (icmp/esp/gre)
    source_ips: list[str] = field(default_factory=list)  # for direction "in"
    destination_ips: list[str] = field(default_factory=list)  # for direction "out"


@dataclass
class LoadBalancerSpec:
    project: str
    lb_id: int
    name: str
    public_ipv4: str | None
    private: list[tuple[int, str]]  # (network id, ip)
    algorithm: str  # round_robin | least_connections
    services: list[dict[str, Any]]  # the API's service objects (protocol, listen_port, destination_port, health_check)
    targets: list[dict[str, Any]]  # resolved: [{"server_id": 1, "ip": "10.0.1.2"}] (label selectors expanded by the API)


class Backend(Protocol):
    # servers
    def create_server(self, spec: ServerSpec) -> None: ...
    def delete_server(self, project: str, server_id: int) -> None: ...
    def power_on(self, project: str, server_id: int) -> None: ...
    def power_off(self, project: str, server_id: int, graceful: bool) -> None: ...
    def reboot(self, project: str, server_id: int, hard: bool) -> None: ...
    def rebuild(self, spec: ServerSpec) -> None: ...  # disk wiped, same addresses
    # the status after a sandbox restart: True/False, or None when the backend has no machines
    def server_running(self, project: str, server_id: int) -> bool | None: ...

    # networks
    def create_network(self, project: str, network_id: int, ip_range: str, subnets: list[str]) -> None: ...
    def delete_network(self, project: str, network_id: int) -> None: ...
    def attach_network(self, project: str, server_id: int, network_id: int, ip: str) -> None: ...
    def detach_network(self, project: str, server_id: int, network_id: int) -> None: ...

    # Cloud Firewalls: the effective rules of every firewall applied to the server (directly or by a
    # label selector); an empty list with applied=False removes all filtering. Inbound traffic on
    # the public interface is dropped unless a rule allows it (replies to the server's own
    # connections always pass); outbound is filtered only when some "out" rule exists.
    def set_firewall(self, project: str, server_id: int, rules: list[FirewallRule], applied: bool) -> None: ...

    # volumes (size in GB; a volume's data survives detach/attach and server deletion)
    def create_volume(self, project: str, volume_id: int, size: int, fmt: str | None) -> None: ...
    def delete_volume(self, project: str, volume_id: int) -> None: ...
    def attach_volume(self, project: str, volume_id: int, server_id: int, mount_path: str) -> None: ...
    def detach_volume(self, project: str, volume_id: int, server_id: int) -> None: ...

    # load balancers (create/update are the same call: the whole wanted state)
    def apply_load_balancer(self, spec: LoadBalancerSpec) -> None: ...
    def delete_load_balancer(self, project: str, lb_id: int) -> None: ...

    # everything of one project (teardown of a test, a project reset)
    def remove_project(self, project: str) -> None: ...

    # the project's public network, which the API allocates public addresses from (after the
    # first host / the first /64: the gateway); None when the backend has no network (record)
    def public_subnet(self, project: str) -> str | None: ...
    def public_subnet6(self, project: str) -> str | None: ...

    # each load balancer target's health per listen port, as the machines see it ({} when unknown)
    def load_balancer_status(self, project: str, lb_id: int) -> dict[str, Any]: ...


class RecordBackend:
    """Nothing is real: every call succeeds at once."""

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)

        def noop(*args: Any, **kwargs: Any) -> Any:
            # None: "no machine to ask" (server_running), "no network" (public_subnet*)
            return {} if name == "load_balancer_status" else None

        return noop
