"""The sandbox's write side, driven by hcloud-python itself over real HTTP on loopback.

A recording backend shows what the machines are asked to do. Actions end by polls only here
(`action_seconds` is large), so no test depends on the machine's speed; the one time-based test
sets polls out of reach instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hcloud import APIException, Client
from hcloud.actions import ActionFailedException
from hcloud.firewalls.domain import FirewallResource, FirewallResourceLabelSelector, FirewallRule
from hcloud.images import Image
from hcloud.load_balancer_types import LoadBalancerType
from hcloud.load_balancers.domain import LoadBalancerService, LoadBalancerTarget, LoadBalancerTargetLabelSelector
from hcloud.locations import Location
from hcloud.networks.domain import NetworkSubnet
from hcloud.server_types import ServerType
from hcloud.servers.domain import ServerCreatePublicNetwork
from hcloud_sandbox import Project, Sandbox, World, generate_world
from hcloud_sandbox.backend import BackendError, RecordBackend

ROOT = Path(__file__).resolve().parents[2]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGz4q4Rk7Zx2V7mYb8a1u3hS4C5ml0w0eN7M8pQb6Yj6 me@host"
KEY2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcw4Jv0kQh3Q0wqyh0Yl7cMq2bzH3i3ydTT4Xq0w4vX other@host"


class Recorder:
    """A backend that records every call; `fail[method] = code` makes that call raise BackendError."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def record(*args: Any) -> Any:
            self.calls.append((name, args))
            if name in self.fail:
                raise BackendError(self.fail[name], f"{name} failed on purpose")
            return True if name == "server_running" else None
        return record

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for called, args in self.calls if called == name]


@pytest.fixture()
def backend() -> Recorder:
    return Recorder()


@pytest.fixture()
def box(backend: Recorder) -> Any:
    with Sandbox([Project("p", "tok", World()), Project("q", "tok-q", generate_world(5))], backend=backend,
                 action_seconds=60) as sandbox:
        yield sandbox


@pytest.fixture()
def client(box: Sandbox) -> Client:
    api = Client(token="tok", api_endpoint=box.url, poll_interval=0.001)
    api._client._retry_interval_func = lambda retries: 0.01  # the default backoff sleeps >= 1 s per retry
    return api


def call(box: Sandbox, path: str, method: str = "GET", body: Any = None, token: str = "tok") -> tuple[int, Any]:
    base = box.url.removesuffix("/v1") if path.startswith("/_sandbox") else box.url
    request = urllib.request.Request(base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_all(*results: Any) -> None:
    for result in results:
        for attr in ("action", "actions", "next_actions"):
            value = getattr(result, attr, None)
            for act in (value if isinstance(value, list) else [value] if value is not None else []):
                act.wait_until_finished()


def new_server(client: Client, name: str = "web-1", **kwargs: Any) -> Any:
    kwargs.setdefault("server_type", ServerType(name="cx23"))
    kwargs.setdefault("image", Image(name="debian-12"))
    result = client.servers.create(name=name, **kwargs)
    wait_all(result)
    return client.servers.get_by_id(result.server.id)


def field_of(exc: pytest.ExceptionInfo[APIException]) -> str:
    return exc.value.details["fields"][0]["name"]


# -- SSH keys --------------------------------------------------------------------------------------
def test_ssh_keys(client: Client) -> None:
    key = client.ssh_keys.create(name="me", public_key=KEY, labels={"team": "ops"})
    digest = hashlib.md5(base64.b64decode(KEY.split()[1])).hexdigest()  # noqa: S324
    assert key.fingerprint == ":".join(digest[i:i + 2] for i in range(0, 32, 2))
    assert key.labels == {"team": "ops"}
    assert client.ssh_keys.get_by_fingerprint(key.fingerprint).id == key.id
    for name, text, field in (("me", KEY2, "name"), ("other", KEY, "public_key")):
        with pytest.raises(APIException) as exc:
            client.ssh_keys.create(name=name, public_key=text)
        assert exc.value.code == "uniqueness_error" and field_of(exc) == field
    with pytest.raises(APIException) as exc:
        client.ssh_keys.create(name="bad", public_key="ssh-ed25519 not-base64!")
    assert exc.value.code == "invalid_input" and field_of(exc) == "public_key"
    assert client.ssh_keys.get_by_name("absent") is None
    assert client.ssh_keys.update(key, labels={"a": "b"}).labels == {"a": "b"}
    assert client.ssh_keys.delete(key) is True
    assert client.ssh_keys.get_all() == []


def test_every_kind_reads_and_name_lookups_of_absent_names_are_empty(box: Sandbox) -> None:
    for kind in ("servers", "networks", "ssh_keys", "firewalls", "placement_groups", "volumes", "primary_ips",
                 "load_balancers", "load_balancer_types", "locations", "server_types", "images", "isos"):
        status, body = call(box, f"/{kind}?name=absent")
        assert status == 200 and body[kind] == [], kind
    status, body = call(box, "/load_balancer_types")
    assert {t["name"] for t in body["load_balancer_types"]} == {"lb11", "lb21", "lb31"}
    status, body = call(box, "/images?name=debian-13&architecture=arm")
    assert [i["architecture"] for i in body["images"]] == ["arm"]
    assert call(box, "/load_balancers/1/metrics")[0] == 404
    assert call(box, "/servers", method="PATCH", body={})[0] == 405


# -- servers and what the backend is asked ------------------------------------------------------------
def test_server_create_with_everything(client: Client, backend: Recorder) -> None:
    key = client.ssh_keys.create(name="me", public_key=KEY)
    net = client.networks.create(name="app", ip_range="10.0.0.0/16", subnets=[
        NetworkSubnet(type="cloud", ip_range="10.0.1.0/24", network_zone="eu-central")])
    firewall = client.firewalls.create(
        name="web", rules=[FirewallRule(direction="in", protocol="tcp", port="22", source_ips=["0.0.0.0/0"])],
        resources=[FirewallResource(type="label_selector", label_selector=FirewallResourceLabelSelector("role=web"))])
    wait_all(firewall)
    group = client.placement_groups.create(name="spread", type="spread").placement_group
    volume = client.volumes.create(size=10, name="data", location=Location(name="fsn1"))
    wait_all(volume)
    result = client.servers.create(name="web-1", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                   ssh_keys=[key], networks=[net], labels={"role": "web"}, placement_group=group,
                                   volumes=[volume.volume], user_data="#cloud-config\n")
    assert result.server.status == "initializing" and result.root_password is None
    assert result.action.command == "create_server" and result.action.status == "running"
    assert [a.command for a in result.next_actions] == ["attach_volume", "start_server"]
    wait_all(result)
    server = client.servers.get_by_id(result.server.id)
    assert server.status == "running"
    assert server.private_net[0].ip == "10.0.1.2"  # .1 is the subnet's gateway
    assert [f.firewall.id for f in server.public_net.firewalls] == [firewall.firewall.id]
    assert server.placement_group.id == group.id and [v.id for v in server.volumes] == [volume.volume.id]
    assert server.public_net.primary_ipv4.id == client.primary_ips.get_by_name(
        f"primary_ip-{server.public_net.primary_ipv4.id}").id
    (spec,) = backend.named("create_server")[0]
    assert spec.ssh_keys == [KEY] and spec.user_data == "#cloud-config\n" and spec.image == "debian-12"
    assert spec.public_ipv4 == server.public_net.ipv4.ip and spec.private == [(net.id, "10.0.1.2")]
    assert spec.public_ipv6 == server.public_net.ipv6.ip.split("/")[0] + "1"
    rules, applied = backend.named("set_firewall")[-1][2:]
    assert applied and [(r.direction, r.port, r.source_ips) for r in rules] == [("in", "22", ["0.0.0.0/0"])]
    assert backend.named("attach_volume") == [("p", volume.volume.id, server.id, f"/mnt/HC_Volume_{volume.volume.id}")]
    assert [name for name, _args in backend.calls if name in ("create_server", "set_firewall", "power_on")] == \
        ["create_server", "set_firewall", "power_on"]  # never exposed: the firewall comes before the boot ends
    assert client.volumes.get_by_id(volume.volume.id).server.id == server.id
    later = new_server(client, "web-2", labels={"role": "web"})  # a label selector covers new servers too
    assert [f.firewall.id for f in later.public_net.firewalls] == [firewall.firewall.id]


def test_root_password_and_no_start(client: Client, backend: Recorder) -> None:
    result = client.servers.create(name="db-1", server_type=ServerType(name="cax11"), image=Image(name="debian-13"),
                                   start_after_create=False,
                                   public_net=ServerCreatePublicNetwork(enable_ipv4=False, enable_ipv6=True))
    assert result.root_password and result.next_actions == []
    wait_all(result)
    server = client.servers.get_by_id(result.server.id)
    assert server.status == "off" and server.public_net.ipv4 is None and server.image.architecture == "arm"
    assert backend.named("power_off") == [("p", server.id, False)] and not backend.named("power_on")


def test_power_actions_statuses_and_rebuild(client: Client, backend: Recorder) -> None:
    server = new_server(client)
    for method, status in (("shutdown", "off"), ("power_on", "running"), ("reboot", "running"),
                           ("power_off", "off")):
        action = getattr(server, method)()
        action.wait_until_finished()
        assert client.servers.get_by_id(server.id).status == status, method
    assert backend.named("power_off")[:2] == [("p", server.id, True), ("p", server.id, False)]
    rebuilt = server.rebuild(Image(name="ubuntu-24.04"))
    rebuilt.action.wait_until_finished()
    assert client.servers.get_by_id(server.id).image.name == "ubuntu-24.04" and rebuilt.root_password
    assert backend.named("rebuild")[0][0].image == "ubuntu-24.04"
    with pytest.raises(APIException) as exc:
        server.change_type(ServerType(name="cx33"), upgrade_disk=True)
    assert exc.value.code == "server_not_stopped"
    server.power_off().wait_until_finished()
    server.change_type(ServerType(name="cx33"), upgrade_disk=True).wait_until_finished()
    assert client.servers.get_by_id(server.id).server_type.name == "cx33"
    delete = server.delete()
    assert client.servers.get_by_id(server.id).id == server.id  # the record goes when the action ends
    delete.wait_until_finished()
    assert client.servers.get_by_name("web-1") is None and backend.named("delete_server") == [("p", server.id)]
    assert client.primary_ips.get_all() == []  # auto_delete Primary IPs go with their server


def test_action_stays_running_for_the_configured_polls_and_locks(box: Sandbox, client: Client) -> None:
    server = new_server(client)
    action = server.power_off()
    with pytest.raises(APIException) as exc:
        server.power_on()
    assert exc.value.code == "locked"
    seen = []
    for _unused in range(3):
        action.reload()
        seen.append((action.status, action.progress))
    assert [s for s, _p in seen] == ["running", "running", "success"]
    assert seen[0][1] < seen[1][1] < seen[2][1] == 100
    status, body = call(box, f"/actions?id={action.id}")
    assert body["actions"][0]["status"] == "success"
    assert call(box, f"/servers/actions/{action.id}")[1]["action"]["command"] == "stop_server"
    assert action.id in [a["id"] for a in call(box, f"/servers/{server.id}/actions")[1]["actions"]]
    assert call(box, f"/actions/{action.id}")[1]["action"]["finished"]


def test_actions_end_by_time_without_polls(box: Sandbox, client: Client) -> None:
    box.configure({"action_polls": 1000, "action_seconds": 0.05})
    result = client.servers.create(name="t-1", server_type=ServerType(name="cx23"), image=Image(name="debian-12"))
    assert box.wait_idle(timeout=20)
    assert client.servers.get_by_id(result.server.id).status == "running"


def test_backend_error_ends_the_action_with_its_code(client: Client, backend: Recorder) -> None:
    server = new_server(client)
    backend.fail["power_off"] = "machine_stuck"
    with pytest.raises(ActionFailedException) as exc:
        server.power_off().wait_until_finished()
    assert exc.value.action.error["code"] == "machine_stuck"
    assert client.servers.get_by_id(server.id).status == "running"  # put back


def test_protection(client: Client) -> None:
    server = new_server(client)
    server.change_protection(delete=True, rebuild=True).wait_until_finished()
    for attempt in (server.delete, lambda: server.rebuild(Image(name="debian-13"))):
        with pytest.raises(APIException) as exc:
            attempt()
        assert exc.value.code == "protected"
    volume = client.volumes.create(size=10, name="v", location=Location(name="fsn1"))
    wait_all(volume)
    volume.volume.change_protection(delete=True).wait_until_finished()
    with pytest.raises(APIException) as exc:
        volume.volume.delete()
    assert exc.value.code == "protected"


@pytest.mark.parametrize(("body", "field"), [
    ({"server_type": "cx99"}, "server_type"),
    ({"image": "windows-11"}, "image"),
    ({"location": "mars1"}, "location"),
    ({"labels": {"bad key!": "x"}}, "labels"),
    ({"labels": {"ok": "not ok!"}}, "labels"),
    ({"name": "not_a_hostname"}, "name"),
    ({"ssh_keys": ["nobody"]}, "ssh_keys"),
    ({"datacenter": "fsn1-dc14"}, "datacenter"),
    ({"public_net": {"enable_ipv4": False, "enable_ipv6": False}}, "networks"),
])
def test_invalid_input_names_the_field(box: Sandbox, body: dict[str, Any], field: str) -> None:
    status, answer = call(box, "/servers", "POST", {"name": "x", "server_type": "cx23", "image": "debian-12", **body})
    assert status == 422 and answer["error"]["code"] == "invalid_input"
    assert answer["error"]["details"]["fields"][0]["name"] == field
    assert field in answer["error"]["message"]
    assert call(box, "/servers?name=x")[1]["servers"] == []  # nothing was created
    status, answer = call(box, "/servers", "POST", {})
    assert status == 422 and answer["error"]["details"]["fields"][0]["name"] == "name"


def test_arm_image_for_an_x86_type_is_refused(box: Sandbox) -> None:
    arm_image = next(i for i in call(box, "/images?name=debian-12")[1]["images"] if i["architecture"] == "arm")
    status, answer = call(box, "/servers", "POST", {"name": "x", "server_type": "cx23", "image": arm_image["id"]})
    assert status == 422 and answer["error"]["details"]["fields"][0]["name"] == "image"


# -- networks --------------------------------------------------------------------------------------
def test_network_attach_allocates_the_reported_address(client: Client, backend: Recorder) -> None:
    net = client.networks.create(name="app", ip_range="10.0.0.0/16", subnets=[
        NetworkSubnet(type="cloud", ip_range="10.0.2.0/24", network_zone="eu-central")])
    first, second = new_server(client, "a-1"), new_server(client, "a-2")
    for server in (first, second):
        server.attach_to_network(net).wait_until_finished()
    ips = [client.servers.get_by_id(s.id).private_net[0].ip for s in (first, second)]
    assert ips == ["10.0.2.2", "10.0.2.3"]
    assert backend.named("attach_network") == [("p", first.id, net.id, "10.0.2.2"), ("p", second.id, net.id, "10.0.2.3")]
    third = new_server(client, "a-3")
    with pytest.raises(APIException) as exc:
        third.attach_to_network(net, ip="10.0.2.1")  # the gateway
    assert exc.value.code == "ip_not_available"
    net.add_subnet(NetworkSubnet(type="cloud", ip_range="10.0.3.0/24", network_zone="eu-central")).wait_until_finished()
    third.attach_to_network(net, ip_range="10.0.3.0/24").wait_until_finished()
    assert client.servers.get_by_id(third.id).private_net[0].ip == "10.0.3.2"
    assert sorted(s.id for s in client.networks.get_by_id(net.id).servers) == sorted([first.id, second.id, third.id])
    first.detach_from_network(net).wait_until_finished()
    assert backend.named("detach_network") == [("p", first.id, net.id)]
    with pytest.raises(APIException) as exc:
        net.add_subnet(NetworkSubnet(type="cloud", ip_range="192.168.0.0/24", network_zone="eu-central"))
    assert exc.value.code == "invalid_input" and field_of(exc) == "ip_range"
    client.networks.update(net, name="app2", labels={"x": "y"})
    assert client.networks.get_by_name("app2").labels == {"x": "y"}


# -- firewalls -------------------------------------------------------------------------------------
def test_firewall_label_selector_rules_follow_labels(client: Client, backend: Recorder, box: Sandbox) -> None:
    web = new_server(client, "w-1", labels={"role": "web"})
    firewall = client.firewalls.create(
        name="fw", rules=[FirewallRule(direction="in", protocol="tcp", port="443", source_ips=["0.0.0.0/0", "::/0"])],
        resources=[FirewallResource(type="label_selector", label_selector=FirewallResourceLabelSelector("role=web"))])
    wait_all(firewall)
    rules, applied = backend.named("set_firewall")[-1][2:]
    assert backend.named("set_firewall")[-1][:2] == ("p", web.id) and applied and rules[0].port == "443"
    applied_to = client.firewalls.get_by_id(firewall.firewall.id).applied_to[0]
    assert [r.server.id for r in applied_to.applied_to_resources] == [web.id]
    with pytest.raises(APIException) as exc:
        client.firewalls.delete(firewall.firewall)
    assert exc.value.code == "resource_in_use"
    client.servers.update(web, labels={"role": "db"})
    assert box.wait_idle(timeout=10)
    assert backend.named("set_firewall")[-1] == ("p", web.id, [], False)
    for act in client.firewalls.remove_from_resources(firewall.firewall, [
            FirewallResource(type="label_selector", label_selector=FirewallResourceLabelSelector("role=web"))]):
        act.wait_until_finished()
    assert client.firewalls.delete(firewall.firewall) is True
    with pytest.raises(APIException) as exc:
        client.firewalls.create(name="bad", rules=[FirewallRule(direction="in", protocol="icmp", port="1",
                                                                source_ips=["0.0.0.0/0"])])
    assert exc.value.code == "invalid_input" and field_of(exc) == "rules[0].port"


# -- placement groups, volumes, Primary IPs ------------------------------------------------------------
def test_placement_group_holds_ten(box: Sandbox, client: Client) -> None:
    group = client.placement_groups.create(name="g", type="spread").placement_group
    box.configure({"action_polls": 0})
    for index in range(10):
        client.servers.create(name=f"g-{index}", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                              placement_group=group)
    with pytest.raises(APIException) as exc:
        client.servers.create(name="g-10", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                              placement_group=group)
    assert exc.value.code == "placement_error"
    assert len(client.placement_groups.get_by_id(group.id).servers) == 10


def test_volumes(client: Client, backend: Recorder) -> None:
    with pytest.raises(APIException) as exc:
        client.volumes.create(size=9, name="small", location=Location(name="fsn1"))
    assert exc.value.code == "invalid_input" and field_of(exc) == "size"
    server = new_server(client)
    created = client.volumes.create(size=10, name="v", server=server, automount=True, format="ext4")
    assert [a.command for a in created.next_actions] == ["attach_volume"]
    wait_all(created)
    volume = client.volumes.get_by_id(created.volume.id)
    assert volume.status == "available" and volume.server.id == server.id and volume.format == "ext4"
    assert backend.named("create_volume") == [("p", volume.id, 10, "ext4")]
    with pytest.raises(APIException) as exc:
        volume.delete()
    assert exc.value.code == "resource_in_use"
    with pytest.raises(APIException) as exc:
        volume.resize(5)
    assert exc.value.code == "invalid_input"
    volume.resize(20).wait_until_finished()
    volume.detach().wait_until_finished()
    assert client.volumes.get_by_id(volume.id).size == 20 and client.volumes.get_by_id(volume.id).server is None
    assert backend.named("detach_volume") == [("p", volume.id, server.id)]
    assert volume.delete() is True and backend.named("delete_volume") == [("p", volume.id)]


def test_primary_ips(client: Client) -> None:
    server = new_server(client, public_net=ServerCreatePublicNetwork(enable_ipv4=False, enable_ipv6=True))
    created = client.primary_ips.create(type="ipv4", name="ip-1", location=Location(name="fsn1"))
    primary = created.primary_ip
    assert created.action is None and primary.assignee_id is None and primary.location.name == "fsn1"
    with pytest.raises(APIException) as exc:
        primary.assign(server.id, "server")
    assert exc.value.code == "server_not_stopped"
    server.power_off().wait_until_finished()
    primary.assign(server.id, "server").wait_until_finished()
    assert client.servers.get_by_id(server.id).public_net.ipv4.ip == primary.ip
    assert client.primary_ips.get_by_id(primary.id).assignee_id == server.id
    primary.change_dns_ptr(primary.ip, "host.example.com").wait_until_finished()
    assert client.servers.get_by_id(server.id).public_net.ipv4.dns_ptr == "host.example.com"
    primary.unassign().wait_until_finished()
    assert client.servers.get_by_id(server.id).public_net.ipv4 is None
    assert client.primary_ips.get_by_name("ip-1").id == primary.id
    assert client.primary_ips.delete(primary) is True


# -- load balancers --------------------------------------------------------------------------------
def test_load_balancer_targets_expand_label_selectors(box: Sandbox, client: Client, backend: Recorder) -> None:
    net = client.networks.create(name="lbnet", ip_range="10.5.0.0/16", subnets=[
        NetworkSubnet(type="cloud", ip_range="10.5.0.0/24", network_zone="eu-central")])
    first = new_server(client, "web-1", labels={"role": "web"}, networks=[net])
    created = client.load_balancers.create(
        name="lb", load_balancer_type=LoadBalancerType(name="lb11"), location=Location(name="fsn1"), network=net,
        services=[LoadBalancerService(protocol="http", listen_port=80, destination_port=8080)],
        targets=[LoadBalancerTarget(type="label_selector", use_private_ip=True,
                                    label_selector=LoadBalancerTargetLabelSelector("role=web"))])
    wait_all(created)
    (spec,) = backend.named("apply_load_balancer")[-1]
    assert spec.targets == [{"server_id": first.id, "ip": "10.5.0.2"}] and spec.private == [(net.id, "10.5.0.3")]
    assert spec.services[0]["destination_port"] == 8080 and spec.algorithm == "round_robin"
    second = new_server(client, "web-2", labels={"role": "web"}, networks=[net])
    (spec,) = backend.named("apply_load_balancer")[-1]
    assert [t["server_id"] for t in spec.targets] == [first.id, second.id]
    lb = client.load_balancers.get_by_id(created.load_balancer.id)
    assert [t.server.id for t in lb.targets[0].targets] == [first.id, second.id]
    assert call(box, f"/servers/{second.id}")[1]["server"]["load_balancers"] == [lb.id]
    lb.add_service(LoadBalancerService(protocol="tcp", listen_port=5432, destination_port=5432)).wait_until_finished()
    with pytest.raises(APIException) as exc:
        lb.add_service(LoadBalancerService(protocol="tcp", listen_port=5432, destination_port=1))
    assert exc.value.code == "source_port_already_used"
    lb.change_algorithm(type(lb.algorithm)(type="least_connections")).wait_until_finished()
    assert backend.named("apply_load_balancer")[-1][0].algorithm == "least_connections"
    client.load_balancers.delete(lb).action.wait_until_finished()
    assert client.load_balancers.get_all() == []
    assert backend.named("delete_load_balancer") == [("p", lb.id)]


# -- faults ------------------------------------------------------------------------------------------
def test_write_faults(box: Sandbox, client: Client) -> None:
    call(box, "/_sandbox/faults", "POST", {"writes": [{"code": "conflict", "count": 2}]})
    assert client.ssh_keys.create(name="k", public_key=KEY).name == "k"  # hcloud-python retries conflict
    assert call(box, "/_sandbox/faults")[1] == {"writes": [], "actions": []}
    for code, status in (("locked", 423), ("resource_in_use", 422)):
        call(box, "/_sandbox/faults", "POST", {"writes": [{"code": code}]})
        answer = call(box, "/ssh_keys", "POST", {"name": "k2", "public_key": KEY2})
        assert answer[0] == status and answer[1]["error"]["code"] == code
    call(box, "/_sandbox/faults", "POST", {"writes": [{"code": "rate_limit_exceeded", "count": 1}]})
    assert client.ssh_keys.create(name="k3", public_key=KEY2).name == "k3"  # retried by the client
    assert call(box, "/_sandbox/faults", "POST", {"writes": [{"code": "nonsense"}]})[0] == 400


def test_action_fault_and_half_made_server(box: Sandbox, client: Client, backend: Recorder) -> None:
    call(box, "/_sandbox/faults", "POST", {"actions": [{"command": "create_server", "code": "server_error"}]})
    result = client.servers.create(name="half", server_type=ServerType(name="cx23"), image=Image(name="debian-12"))
    with pytest.raises(ActionFailedException) as exc:
        result.action.wait_until_finished()
    assert exc.value.action.error["code"] == "server_error"
    with pytest.raises(ActionFailedException):
        result.next_actions[0].wait_until_finished()
    assert client.servers.get_by_name("half").status == "off" and not backend.named("create_server")
    server = new_server(client, "whole")
    call(box, "/_sandbox/faults", "POST", {"actions": [{"command": "reboot_server", "code": "timeout"}]})
    with pytest.raises(ActionFailedException):
        server.reboot().wait_until_finished()
    server.reboot().wait_until_finished()  # used up


# -- legacy shape, state file, cache, CLI -----------------------------------------------------------------
def test_legacy_switch_covers_writes(box: Sandbox, client: Client) -> None:
    box.configure({"legacy_datacenter": True})
    status, answer = call(box, "/servers", "POST", {"name": "old", "server_type": "cx23", "image": "debian-12",
                                                    "datacenter": "nbg1-dc3"})
    assert status == 201 and answer["server"]["datacenter"]["name"] == "nbg1-dc3"
    assert answer["server"]["location"]["name"] == "nbg1"
    status, answer = call(box, "/primary_ips", "POST", {"name": "ip", "type": "ipv4", "datacenter": "fsn1-dc14"})
    assert status == 201 and answer["primary_ip"]["datacenter"]["location"]["name"] == "fsn1"
    assert call(box, "/datacenters")[0] == 200
    assert "datacenter" in call(box, "/primary_ips")[1]["primary_ips"][0]
    box.configure({"legacy_datacenter": False})
    assert "datacenter" not in call(box, "/primary_ips")[1]["primary_ips"][0]
    assert call(box, "/datacenters")[0] == 404


def test_state_file_round_trip(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with Sandbox([Project("p", "tok", World())], state_file=state, action_seconds=60) as first:
        api = Client(token="tok", api_endpoint=first.url, poll_interval=0.001)
        key = api.ssh_keys.create(name="me", public_key=KEY)
        server = new_server(api, ssh_keys=[key], labels={"keep": "yes"})
        server.power_off().wait_until_finished()
        running = api.servers.create(name="mid", server_type=ServerType(name="cx23"), image=Image(name="debian-12"))
    from hcloud_sandbox.__main__ import _projects, _parser  # noqa: PLC0415 - the CLI's own loader

    args = _parser().parse_args(["up", "--state-file", str(state)])
    projects = _projects(args, _parser(), RecordBackend())
    with Sandbox(projects, state_file=state, action_seconds=60) as second:
        api = Client(token="tok", api_endpoint=second.url, poll_interval=0.001)
        assert api.ssh_keys.get_by_name("me").fingerprint == key.fingerprint
        again = api.servers.get_by_id(server.id)
        assert again.labels == {"keep": "yes"} and again.public_net.ipv4.ip == server.public_net.ipv4.ip
        assert again.status == "off"  # the record backend has no machines: the saved status stands
        assert api.actions.get_by_id(running.action.id).status in ("success", "error")
        assert api.ssh_keys.create(name="next", public_key=KEY2).id > max(server.id, key.id)
    assert json.loads(state.read_text())["projects"][0]["name"] == "p"


def test_state_reload_asks_the_backend_for_server_status(tmp_path: Path) -> None:
    from hcloud_sandbox.state import load  # noqa: PLC0415

    class Stopped(Recorder):
        def server_running(self, project: str, server_id: int) -> bool:
            return False
    state = tmp_path / "state.json"
    with Sandbox([Project("p", "tok", World())], state_file=state, action_seconds=60) as box:
        new_server(Client(token="tok", api_endpoint=box.url, poll_interval=0.001))
    (project,) = load(state, Stopped())
    assert [s["status"] for s in project["world"].servers] == ["off"]


def test_page_cache_follows_writes(box: Sandbox, client: Client) -> None:
    assert len(client.servers.get_all()) == 0 and len(Client(token="tok-q", api_endpoint=box.url).servers.get_all()) == 5
    server = new_server(client)
    assert [s.name for s in client.servers.get_all()] == ["web-1"]
    client.servers.update(server, name="renamed")
    assert client.servers.get_by_name("renamed").id == server.id
    assert call(box, "/servers/1", token="tok-q")[0] == 404  # projects stay apart


def test_docker_backend_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from hcloud_sandbox import __main__ as cli  # noqa: PLC0415

    def missing(name: str, package: str | None = None) -> Any:
        raise ModuleNotFoundError(f"No module named {name!r}")
    monkeypatch.setattr(cli.importlib, "import_module", missing)
    with pytest.raises(SystemExit, match="--backend docker is not available"):
        cli.make_backend("docker")


def test_daemon_up_and_down(tmp_path: Path) -> None:
    pid_file, state = tmp_path / "sandbox.pid", tmp_path / "state.json"
    env_path = str(ROOT / "tests" / "sandbox")
    command = [sys.executable, "-m", "hcloud_sandbox"]
    up = subprocess.run([*command, "up", "--daemon", "--pid-file", str(pid_file), "--state-file", str(state),
                         "--project", "d:tok-d:3"], capture_output=True, text=True, timeout=60,
                        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, check=False)
    assert up.returncode == 0, up.stderr
    url = up.stdout.strip()
    try:
        api = Client(token="tok-d", api_endpoint=url)
        assert len(api.servers.get_all()) == 3
        api.ssh_keys.create(name="k", public_key=KEY)
    finally:
        down = subprocess.run([*command, "down", "--pid-file", str(pid_file)], capture_output=True, text=True,
                              timeout=60, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, check=False)
    assert down.returncode == 0, down.stderr
    assert not pid_file.exists()
    saved = json.loads(state.read_text())["projects"][0]["world"]
    assert [k["name"] for k in saved["ssh_keys"]] == ["k"]


# -- the DockerBackend's commands are bounded ------------------------------------------------------
def test_a_backend_command_returns_in_its_bound_even_when_a_descendant_keeps_its_output_open():
    import subprocess
    import time

    from hcloud_sandbox.docker_backend import bounded_run

    # subprocess.run would wait for the descendant (it holds stdout) after killing the command
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        bounded_run(["sh", "-c", "sleep 60 & sleep 60"], None, 1)
    assert time.monotonic() - start < 12
    # the whole group was killed: no sleep of it is left
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", "sleep 60"], capture_output=True, text=True, check=False)
    assert left.stdout.strip() == "", left.stdout
    # an ordinary command: its output, its return code, its stdin
    done = bounded_run(["sh", "-c", "cat; echo err >&2; exit 3"], "in\n", 10)
    assert (done.returncode, done.stdout, done.stderr) == (3, "in\n", "err\n")


# -- the listening socket --------------------------------------------------------------------------
def test_the_sandbox_listens_with_a_backlog_for_bursts_and_answers_a_burst(box: Sandbox) -> None:
    import concurrent.futures
    from urllib.parse import urlsplit

    port = urlsplit(box.url).port
    # the kernel's own view of the listening socket: ss shows a listener's backlog as its Send-Q
    shown = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True, timeout=10)
    assert [line.split()[2] for line in shown.stdout.splitlines()] == ["128"], shown.stdout

    def one(index: int) -> int | tuple[int, str, bytes]:
        request = urllib.request.Request(box.url + f"/servers?per_page={1 + index % 50}",
                                         headers={"Authorization": "Bearer tok"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status
        except urllib.error.HTTPError as err:  # who answered, in the failure's message
            return err.code, err.reason, err.read()[:200]

    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        assert set(pool.map(one, range(256))) == {200}
