"""provision.yml's plan and hosts, teardown.yml's plan (plugin_utils/hcloud_env.py), and both playbooks'
refusals run for real against the API sandbox: nothing is written, a bad description costs no request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from ansible_collections.anvil.hetzner.plugins.plugin_utils import hcloud as inv
from ansible_collections.anvil.hetzner.plugins.plugin_utils import hcloud_env as h
from hcloud_sandbox import Project, Sandbox, build_world
from test_provision_errors import CATALOGUE, GOOD, KEY

ROOT = Path(__file__).resolve().parents[2]


def test_the_plan_labels_everything_and_protects_servers_at_creation():
    plan = h.plan(GOOD)
    labels = {"env": "staging", "managed-by": "anvil", "team": "platform"}
    assert plan["label_selector"] == "env=staging,managed-by=anvil"
    assert plan["ssh_keys"] == [{"name": "admin", "public_key": KEY, "labels": labels}]
    assert plan["network"] == {"name": "staging", "ip_range": "10.20.0.0/16", "labels": labels}
    assert plan["subnets"] == [{"network": "staging", "ip_range": "10.20.1.0/24", "network_zone": "eu-central",
                                "type": "cloud"}]
    assert [f["name"] for f in plan["firewalls"]] == ["staging-web", "staging-db"]
    web = plan["firewalls"][0]["rules"]
    assert web[0] == {"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["203.0.113.0/24"],
                      "destination_ips": []}
    assert web[2]["port"] is None and web[3]["destination_ips"] == ["0.0.0.0/0"]
    assert plan["firewalls"][1]["rules"][0]["source_ips"] == ["10.20.0.0/16", "203.0.113.7/32"]  # bare address -> CIDR
    assert plan["placement_group"] == {"name": "staging-spread", "type": "spread", "labels": labels}
    web1, db1 = plan["servers"]
    assert web1["firewalls"] == ["staging-web"] and web1["placement_group"] == "staging-spread"
    assert web1["private_networks"] == ["staging"] and web1["volumes"] == ["web-1-data"]
    assert web1["labels"] == {**labels, "role": "web"} and web1["ssh_keys"] == ["admin"]
    assert (db1["server_type"], db1["location"], db1["backups"], db1["labels"]["tier"]) == ("cax11", "nbg1", True, "db")
    assert plan["volumes"] == [{"name": "web-1-data", "size": 10, "format": "ext4", "automount": False, "location": "fsn1",
                                "server": "web-1", "labels": {**labels, "role": "web"},
                                "where": "hcloud_environment.servers[0].volumes[0]"}]
    lb = plan["load_balancer"]
    assert (lb["name"], lb["location"], lb["network"]) == ("staging-lb", "fsn1", "staging")
    assert lb["services"][0]["listen_port"] == 80 and lb["services"][0]["destination_port"] == 80
    assert lb["targets"] == [{"role": "web", "label_selector": "env=staging,role=web", "use_private_ip": True}]


def test_without_network_and_placement_group():
    plan = h.plan({**GOOD, "network": None, "placement_group": "false", "load_balancer": None})
    assert plan["network"] is None and plan["subnets"] == [] and plan["placement_group"] is None
    assert plan["servers"][0]["private_networks"] == [] and plan["servers"][0]["placement_group"] is None


def _module_server(api: dict) -> dict:
    """What hetzner.hcloud.server_info returns for a server of the API (its own field names)."""
    return {"id": api["id"], "name": api["name"], "status": api["status"], "created": api["created"],
            "labels": api["labels"], "server_type": api["server_type"]["name"], "location": api["location"]["name"],
            "image": api["image"]["name"] if api["image"] else None,
            "ipv4_address": (api["public_net"]["ipv4"] or {}).get("ip"),
            "ipv6": (api["public_net"]["ipv6"] or {}).get("ip"),
            "private_networks_info": [{"name": "staging", "ip": p["ip"]} for p in api["private_net"]],
            "placement_group": None, "delete_protection": False}


def test_hosts_match_what_the_inventory_plugin_makes():
    world = build_world({"networks": [{"name": "staging", "ip_range": "10.20.0.0/16"}], "servers": [
        {"name": "web-1", "labels": {"env": "staging", "role": "web", "managed-by": "anvil"}, "location": "fsn1",
         "server_type": "cx22", "image": "debian-12", "ipv4": "192.0.2.10", "networks": {"staging": "10.20.1.2"}},
        {"name": "db-1", "labels": {"env": "staging", "role": "db"}, "location": "nbg1", "server_type": "cax11",
         "image": "debian-12", "ipv4": None, "networks": {"staging": "10.20.1.3"}}]})
    networks = [{"id": n["id"], "name": n["name"]} for n in world.networks]
    names = {n["id"]: n["name"] for n in world.networks}
    hosts = h.inventory_hosts([_module_server(s) for s in world.servers], catalogue=CATALOGUE, networks=networks,
                              env=GOOD)
    for api, host in zip(world.servers, hosts):
        want = inv.prefixed(inv.server_vars(api, names, "default"), "hcloud_", "")
        got = {k: v for k, v in host["vars"].items() if k != "ansible_host"}
        # the module result has no reverse DNS; everything else is the inventory's own value
        assert {k: v for k, v in got.items() if k != "hcloud_ipv4_dns_ptr"} == \
            {k: v for k, v in want.items() if k != "hcloud_ipv4_dns_ptr"}
        groups = ["hcloud"] + inv.auto_groups(inv.server_vars(api, names, "default"), inv.GROUP_BY, ["role"], ".")
        assert host["groups"] == groups
    assert hosts[0]["vars"]["ansible_host"] == "192.0.2.10" and "web" in hosts[0]["groups"]
    assert hosts[1]["vars"]["ansible_host"].startswith("2001:db8") or hosts[1]["vars"]["ansible_host"] == "10.20.1.3"
    other = h.inventory_hosts([_module_server(world.servers[1])], catalogue=CATALOGUE, networks=networks,
                              options={"group_by_labels": [], "group": "", "connect_with": ["private_ipv4"],
                                       "project": "staging", "network": "staging"})
    assert other[0]["vars"]["ansible_host"] == "10.20.1.3" and "db" not in other[0]["groups"]
    assert "project_staging" in other[0]["groups"] and "hcloud" not in other[0]["groups"]


def test_add_host_sets_every_variable_the_inventory_sets():
    play = yaml.safe_load((ROOT / "playbooks" / "provision.yml").read_text())[0]
    task = next(t for t in play["tasks"] if "ansible.builtin.add_host" in t)
    keys = set(task["ansible.builtin.add_host"]) - {"name", "groups", "ansible_host"}
    world = build_world({"servers": [{"name": "x", "ipv4": "192.0.2.1"}]})
    assert keys == set(inv.prefixed(inv.server_vars(world.servers[0], {}, "p"), "hcloud_", ""))


OURS = {"env": "staging", "managed-by": "anvil"}


def test_teardown_deletes_only_our_labelled_resources_in_order():
    existing = {
        "servers": [{"name": "web-1", "labels": OURS}, {"name": "prod-1", "labels": {"env": "production",
                                                                                     "managed-by": "anvil"}},
                    {"name": "hand-1", "labels": {"env": "staging"}}],
        "volumes": [{"name": "v", "labels": OURS}], "firewalls": [{"name": "staging-web", "labels": OURS}],
        "placement_groups": [{"name": "staging-spread", "labels": OURS}], "networks": [{"name": "staging", "labels": OURS}],
        "ssh_keys": [{"name": "admin", "labels": OURS}, {"name": "shared", "labels": {}}],
        "load_balancers": [{"name": "staging-lb", "labels": OURS}]}
    plan = h.teardown_plan(existing, "staging")
    assert plan["order"] == ["load_balancers", "servers", "volumes", "firewalls", "placement_groups", "networks", "ssh_keys"]
    assert plan["delete"] == {"load_balancers": ["staging-lb"], "servers": ["web-1"], "volumes": ["v"],
                              "firewalls": ["staging-web"], "placement_groups": ["staging-spread"],
                              "networks": ["staging"], "ssh_keys": ["admin"]}
    assert plan["protected"] == [] and plan["count"] == 7 and plan["summary"].startswith("deleting load balancers: staging-lb")
    existing["servers"][0]["delete_protection"] = True
    existing["networks"][0]["delete_protection"] = True
    assert h.teardown_plan(existing, "staging")["protected"] == ["server web-1", "network staging"]
    empty = h.teardown_plan({}, "staging")
    assert empty["count"] == 0 and empty["summary"] == "nothing labelled env=staging,managed-by=anvil is left"


# --- the playbooks, run for real against the sandbox (read side): refusals before any write


def _run(playbook: str, url: str, *args: str, token: str = "tok") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "HCLOUD_"))}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", HCLOUD_ENDPOINT=url, HCLOUD_TOKEN=token,
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    return subprocess.run(["ansible-playbook", "-i", "localhost,", f"playbooks/{playbook}.yml", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def _description(tmp_path: Path, description: dict) -> str:
    path = tmp_path / "env.json"
    path.write_text(json.dumps({"hcloud_environment": description}))
    return f"@{path}"


def test_the_playbooks_refuse_before_any_write(tmp_path):
    with Sandbox([Project("staging", "tok", build_world({"servers": []}))]) as box:
        bad = {**GOOD, "servers": GOOD["servers"] + [{"name": "web-1", "role": "web"}]}
        out = _run("provision", box.url, "-e", _description(tmp_path, bad))
        assert out.returncode == 2 and "hcloud_environment.servers[2].name: web-1 is also" in out.stdout, out.stdout
        assert box.requests()["total"] == 0  # the description alone was enough: no API call at all

        out = _run("provision", box.url, "-e", _description(tmp_path, {**GOOD, "location": "fsn9"}))
        assert "hcloud_environment.servers[0].location: 'fsn9' is not a Hetzner location" in out.stdout, out.stdout
        assert all(p.startswith("GET ") for p in box.requests()["by_path"]), box.requests()["by_path"]

        box.reset()
        for confirm in ([], ["-e", "teardown_confirm=Staging"], ["-e", "teardown_confirm=production"]):
            out = _run("teardown", box.url, "-e", _description(tmp_path, GOOD), *confirm)
            assert out.returncode == 2 and "teardown_confirm: give -e teardown_confirm=staging" in out.stdout, out.stdout
        assert box.requests()["total"] == 0
        out = _run("provision", box.url, "-e", _description(tmp_path, GOOD), token="")
        assert "hcloud_api_token (or HCLOUD_TOKEN): needs a value" in out.stdout
        assert "tok" not in out.stdout.replace("token", "").replace("TOKEN", "")
