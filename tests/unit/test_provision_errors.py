"""The environment description's check (filter anvil.hetzner.provision_errors, plugin_utils/hcloud_env.py):
every refusal class names its field; catalogue and existing resources checked as the API lists them."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ansible_collections.anvil.hetzner.plugins.filter.provision_errors import FilterModule, provision_errors
from ansible_collections.anvil.hetzner.plugins.plugin_utils import hcloud_env as h
from hcloud_sandbox.world import World

ROOT = Path(__file__).resolve().parents[2]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMWdIF84kQ7lbRhT5MbCpxRULqbnaG6IgpKbMB5R2UvH admin@example.org"
GOOD = {
    "name": "staging", "location": "fsn1", "server_type": "cx22", "image": "debian-12", "labels": {"team": "platform"},
    "ssh_keys": [{"name": "admin", "public_key": KEY}],
    "network": {"ip_range": "10.20.0.0/16", "subnets": ["10.20.1.0/24"]},
    "firewalls": {"web": [{"port": 22, "source_ips": ["203.0.113.0/24"]},
                          {"port": "80", "source_ips": ["0.0.0.0/0", "::/0"]},
                          {"protocol": "icmp", "source_ips": ["0.0.0.0/0"]},
                          {"direction": "out", "port": "any", "destination_ips": ["0.0.0.0/0"]}],
                  "db": [{"port": "20-25", "source_ips": ["10.20.0.0/16", "203.0.113.7"]}]},
    "servers": [{"name": "web-1", "role": "web", "volumes": [{"name": "web-1-data", "size": "10"}]},
                {"name": "db-1", "role": "db", "server_type": "cax11", "location": "nbg1", "labels": {"tier": "db"},
                 "backups": "true"}],
    "load_balancer": {"type": "lb11", "services": [{"protocol": "http"}], "targets": ["web"]},
}
# The sandbox's catalogue: the shape the hetzner.hcloud *_info modules return it in is a superset
# of these fields (name, architecture, locations[].name/available).
WORLD = World()
CATALOGUE = {"locations": WORLD.locations, "server_types": WORLD.server_types, "images": WORLD.images,
             "load_balancer_types": [{"name": "lb11"}, {"name": "lb21"}, {"name": "lb31"}]}


def env(**changes):
    out = copy.deepcopy(GOOD)
    out.update(changes)
    return out


def server(index=0, **changes):
    out = copy.deepcopy(GOOD)
    out["servers"][index].update(changes)
    return out


def test_a_good_description_has_no_errors():
    assert provision_errors(GOOD) == []
    assert provision_errors(GOOD, catalogue=CATALOGUE) == []
    assert provision_errors(GOOD, catalogue=CATALOGUE, existing={}) == []
    assert set(FilterModule().filters()) == {"provision_errors", "provision_plan", "provision_hosts", "teardown_plan"}


@pytest.mark.parametrize("path", sorted(ROOT.glob("inventories/*/group_vars/all/hcloud_environment.yml")))
def test_the_shipped_examples_are_valid(path):
    description = yaml.safe_load(path.read_text())["hcloud_environment"]
    assert h.environment_errors(description, catalogue=CATALOGUE) == []


BAD = [
    # the description itself
    ("not a mapping", "x", "hcloud_environment: must be a mapping"),
    ("typo in a key", env(sever_type="cx22"), "hcloud_environment: unknown key sever_type"),
    ("bad env name", env(name="Staging"), "hcloud_environment.name: 'Staging' is not an environment name"),
    ("no env name", env(name=None), "hcloud_environment.name: None"),
    # labels: the API's syntax
    ("label value with space", env(labels={"team": "a b"}), "hcloud_environment.labels.team: 'a b' is not a label value"),
    ("label value too long", env(labels={"team": "a" * 64}), "hcloud_environment.labels.team:"),
    ("label value not alnum at the end", env(labels={"team": "ops-"}), "hcloud_environment.labels.team: 'ops-'"),
    ("label value not a string", env(labels={"version": 1}), "hcloud_environment.labels.version: 1 is not a string"),
    ("label key too long", env(labels={"k" * 64: "v"}), "is not a label key: the name"),
    ("label key bad prefix", env(labels={"Example.COM/x": "v"}), "its prefix must be a DNS subdomain"),
    ("reserved label", env(labels={"env": "prod"}), "hcloud_environment.labels.env: is set by provision.yml"),
    ("server label", server(0, labels={"role": "x"}), "hcloud_environment.servers[0].labels.role: is set by"),
    ("server label value", server(1, labels={"tier": "db!"}), "hcloud_environment.servers[1].labels.tier: 'db!'"),
    # ssh keys
    ("no keys", env(ssh_keys=[]), "hcloud_environment.ssh_keys: must be a list of at least one key"),
    ("bad key", env(ssh_keys=[{"name": "a", "public_key": "ssh-ed25519 AAAA"}]), "hcloud_environment.ssh_keys[0].public_key:"),
    ("private key", env(ssh_keys=[{"name": "a", "public_key": "-----BEGIN OPENSSH PRIVATE KEY-----"}]),
     "hcloud_environment.ssh_keys[0].public_key: looks like a private key"),
    ("key twice", env(ssh_keys=[{"name": "a", "public_key": KEY}, {"name": "b", "public_key": KEY}]),
     "hcloud_environment.ssh_keys[1].public_key: the same key as hcloud_environment.ssh_keys[0]"),
    ("key name twice", env(ssh_keys=[{"name": "a", "public_key": KEY}, {"name": "a"}]),
     "hcloud_environment.ssh_keys[1].name: a is listed twice"),
    # network and subnets
    ("public range", env(network={"ip_range": "8.8.0.0/16", "subnets": ["8.8.1.0/24"]}),
     "hcloud_environment.network.ip_range: 8.8.0.0/16 is not inside 10.0.0.0/8"),
    ("network too small", env(network={"ip_range": "10.0.0.0/25", "subnets": ["10.0.0.0/26"]}),
     "hcloud_environment.network.ip_range: 10.0.0.0/25 is smaller than /24"),
    ("subnet outside", env(network={"ip_range": "10.20.0.0/16", "subnets": ["10.21.1.0/24"]}),
     "hcloud_environment.network.subnets[0]: 10.21.1.0/24 is outside the network's ip_range 10.20.0.0/16"),
    ("subnets overlap", env(network={"ip_range": "10.20.0.0/16", "subnets": ["10.20.0.0/20", "10.20.1.0/24"]}),
     "hcloud_environment.network.subnets[1]: 10.20.1.0/24 overlaps"),
    ("subnet host bits", env(network={"ip_range": "10.20.0.0/16", "subnets": ["10.20.1.1/24"]}),
     "hcloud_environment.network.subnets[0]: '10.20.1.1/24' has host bits set"),
    ("no subnet", env(network={"ip_range": "10.20.0.0/16"}), "hcloud_environment.network.subnets: must be a list"),
    # firewalls
    ("rule without source", env(firewalls={"web": [{"port": 22}], "db": GOOD["firewalls"]["db"]}),
     "hcloud_environment.firewalls.web[0].source_ips: an inbound rule needs source_ips"),
    ("rule without port", env(firewalls={**GOOD["firewalls"], "web": [{"source_ips": ["0.0.0.0/0"]}]}),
     "hcloud_environment.firewalls.web[0].port: tcp rules need a port"),
    ("bad port", env(firewalls={**GOOD["firewalls"], "web": [{"port": 70000, "source_ips": ["0.0.0.0/0"]}]}),
     "hcloud_environment.firewalls.web[0].port: 70000 is not a port"),
    ("bad range", env(firewalls={**GOOD["firewalls"], "web": [{"port": "90-80", "source_ips": ["0.0.0.0/0"]}]}),
     "hcloud_environment.firewalls.web[0].port: '90-80'"),
    ("icmp with port", env(firewalls={**GOOD["firewalls"], "web": GOOD["firewalls"]["web"]
                                      + [{"protocol": "icmp", "port": 1, "source_ips": ["0.0.0.0/0"]}]}),
     "hcloud_environment.firewalls.web[4].port: icmp rules have no port"),
    ("bad source", env(firewalls={**GOOD["firewalls"], "web": [{"port": 22, "source_ips": ["10.0.0.0/33"]}]}),
     "hcloud_environment.firewalls.web[0].source_ips[0]: '10.0.0.0/33'"),
    ("bad protocol", env(firewalls={**GOOD["firewalls"], "web": [{"protocol": "sctp", "port": 22, "source_ips": ["0.0.0.0/0"]}]}),
     "hcloud_environment.firewalls.web[0].protocol: 'sctp'"),
    ("no ssh", env(firewalls={**GOOD["firewalls"], "web": [{"port": 80, "source_ips": ["0.0.0.0/0"]}]}),
     "hcloud_environment.firewalls.web: no inbound tcp rule allows port 22"),
    ("unknown rule key", env(firewalls={**GOOD["firewalls"], "web": [{"port": 22, "source": ["0.0.0.0/0"]}]}),
     "hcloud_environment.firewalls.web[0]: unknown key source"),
    # servers
    ("duplicate servers", env(servers=[{"name": "web-1", "role": "web"}, {"name": "web-1", "role": "web"}]),
     "hcloud_environment.servers[1].name: web-1 is also hcloud_environment.servers[0]"),
    ("role without firewall", server(0, role="cache"), "hcloud_environment.servers[0].role: cache has no firewall"),
    ("bad server name", server(0, name="Web_1"), "hcloud_environment.servers[0].name: 'Web_1' is not a server name"),
    ("no type anywhere", {**{k: v for k, v in GOOD.items() if k != "server_type"}},
     "hcloud_environment.servers[0].server_type: needs a value"),
    ("bad bool", server(1, backups="maybe"), "hcloud_environment.servers[1].backups: 'maybe' is not true or false"),
    ("unreachable", env(network=None, servers=[{"name": "w", "role": "web", "public_ipv4": "false",
                                                "public_ipv6": False}], load_balancer=None),
     "hcloud_environment.servers[0]: without public_ipv4, public_ipv6 and a network"),
    ("too many for spread", env(servers=[{"name": f"web-{i}", "role": "web"} for i in range(11)]),
     "hcloud_environment.placement_group: a spread placement group holds at most 10 servers"),
    # volumes
    ("small volume", server(0, volumes=[{"name": "v", "size": 5}]),
     "hcloud_environment.servers[0].volumes[0].size: 5 is not a size in GB from 10"),
    ("small volume as -e string", server(0, volumes=[{"name": "v", "size": "9"}]),
     "hcloud_environment.servers[0].volumes[0].size: '9'"),
    ("volume name twice", server(1, volumes=[{"name": "web-1-data", "size": 10}]),
     "hcloud_environment.servers[1].volumes[0].name: web-1-data is also hcloud_environment.servers[0].volumes[0]"),
    ("volume format", server(0, volumes=[{"name": "v", "size": 10, "format": "btrfs"}]),
     "hcloud_environment.servers[0].volumes[0].format: 'btrfs'"),
    # load balancer
    ("lb target role", env(load_balancer={"type": "lb11", "services": [{"protocol": "tcp", "listen_port": 80}],
                                          "targets": ["api"]}),
     "hcloud_environment.load_balancer.targets[0]: 'api' is not the role of any server"),
    ("lb port twice", env(load_balancer={"type": "lb11", "targets": ["web"],
                                         "services": [{"protocol": "http"}, {"protocol": "tcp", "listen_port": "80"}]}),
     "hcloud_environment.load_balancer.services[1].listen_port: 80 is also"),
    ("lb https without certs", env(load_balancer={"type": "lb11", "targets": ["web"], "services": [{"protocol": "https"}]}),
     "hcloud_environment.load_balancer.services[0].http.certificates"),
    ("lb private without network", env(network=None, load_balancer={"type": "lb11", "targets": ["web"],
                                                                    "use_private_ip": True,
                                                                    "services": [{"protocol": "http"}]}),
     "hcloud_environment.load_balancer.use_private_ip: needs hcloud_environment.network"),
]


@pytest.mark.parametrize(("description", "message"), [(d, m) for _n, d, m in BAD], ids=[n for n, _d, _m in BAD])
def test_every_bad_description_is_refused_naming_its_field(description, message):
    errors = provision_errors(description)
    assert any(message in e for e in errors), errors
    assert all(e.startswith(("hcloud_environment", "hcloud_api_token")) for e in errors), errors


CATALOGUE_BAD = [
    ("unknown location", server(0, location="fsn9"), "hcloud_environment.servers[0].location: 'fsn9' is not a Hetzner location"),
    ("unknown default location", env(location="mars1"), "hcloud_environment.servers[0].location: 'mars1'"),
    ("unknown type", server(1, server_type="cx99"), "hcloud_environment.servers[1].server_type: 'cx99' is not a Hetzner server type"),
    ("image for the architecture", server(1, image="debian-7"),
     "hcloud_environment.servers[1].image: 'debian-7' is not a system image for arm (cax11)"),
    ("zones differ", server(1, location="ash"), "hcloud_environment.network: the servers sit in several network zones"),
    ("lb type", env(load_balancer={"type": "lb99", "services": [{"protocol": "http"}], "targets": ["web"]}),
     "hcloud_environment.load_balancer.type: 'lb99'"),
]


@pytest.mark.parametrize(("description", "message"), [(d, m) for _n, d, m in CATALOGUE_BAD],
                         ids=[n for n, _d, _m in CATALOGUE_BAD])
def test_what_the_api_does_not_offer_is_refused(description, message):
    assert provision_errors(description) == []  # nothing the description alone shows
    errors = provision_errors(description, catalogue=CATALOGUE)
    assert any(message in e for e in errors), errors


def test_a_type_not_orderable_in_the_location_is_refused():
    catalogue = copy.deepcopy(CATALOGUE)
    cx22 = next(t for t in catalogue["server_types"] if t["name"] == "cx22")
    for loc in cx22["locations"]:
        loc["available"] = loc["name"] != "fsn1"
    errors = provision_errors(GOOD, catalogue=catalogue)
    assert any(e.startswith("hcloud_environment.servers[0].server_type: cx22 cannot be ordered in fsn1") for e in errors)


OURS = {"env": "staging", "managed-by": "anvil"}


@pytest.mark.parametrize(("existing", "message"), [
    ({"servers": [{"name": "web-1", "labels": {"env": "production", "managed-by": "anvil"}, "location": "fsn1"}]},
     "hcloud_environment.servers[0].name: the server web-1 belongs to env=production"),
    ({"servers": [{"name": "db-1", "labels": {}, "location": "nbg1"}]},
     "hcloud_environment.servers[1].name: the server db-1 carries no env label"),
    ({"firewalls": [{"name": "staging-web", "labels": {"env": "staging"}}]},
     "hcloud_environment.firewalls.web: the firewall staging-web was not made by provision.yml"),
    ({"networks": [{"name": "staging", "labels": {"env": "other"}}]}, "hcloud_environment.network.name: the network"),
    ({"volumes": [{"name": "web-1-data", "labels": {}}]}, "hcloud_environment.servers[0].volumes[0].name: the volume"),
    ({"placement_groups": [{"name": "staging-spread", "labels": {}}]}, "hcloud_environment.placement_group: the placement group"),
    ({"load_balancers": [{"name": "staging-lb", "labels": {}}]}, "hcloud_environment.load_balancer.name: the load balancer"),
    ({"servers": [{"name": "web-1", "labels": OURS, "location": "hel1"}]},
     "hcloud_environment.servers[0].location: web-1 exists in hel1; a server cannot move"),
    ({"ssh_keys": [{"name": "laptop", "fingerprint": h.fingerprint(KEY), "labels": {}}]},
     "hcloud_environment.ssh_keys[0].public_key: the project already holds this key as 'laptop'"),
    ({"ssh_keys": [{"name": "admin", "fingerprint": "00:11", "labels": {"env": "production", "managed-by": "anvil"}}]},
     "hcloud_environment.ssh_keys[0].name: the SSH key admin belongs to env=production"),
])
def test_names_of_others_are_refused_never_taken_over(existing, message):
    errors = provision_errors(GOOD, catalogue=CATALOGUE, existing=existing)
    assert any(message in e for e in errors), errors


def test_own_resources_and_named_project_keys_are_fine():
    existing = {"servers": [{"name": "web-1", "labels": OURS, "location": "fsn1"}],
                "firewalls": [{"name": "staging-web", "labels": OURS}],
                "ssh_keys": [{"name": "admin", "fingerprint": h.fingerprint(KEY), "labels": OURS},
                             {"name": "shared", "fingerprint": "aa", "labels": {}}]}
    description = env(ssh_keys=GOOD["ssh_keys"] + [{"name": "shared"}])
    assert provision_errors(description, catalogue=CATALOGUE, existing=existing) == []
    errors = provision_errors(env(ssh_keys=[{"name": "absent"}]), catalogue=CATALOGUE, existing=existing)
    assert errors == ["hcloud_environment.ssh_keys[0].name: no SSH key named absent in the project (give public_key to create it)"]


def test_the_token_is_required_and_never_shown():
    assert provision_errors(GOOD, token="") == ["hcloud_api_token (or HCLOUD_TOKEN): needs a value (from vault)"]
    errors = provision_errors(GOOD, token="s3cr3t-token\n")
    assert errors and all("s3cr3t" not in e for e in errors)
    assert provision_errors(GOOD, token="s3cr3t-token") == []


def test_fingerprint_is_hetzners_md5_form():
    fp = h.fingerprint(KEY)
    assert fp is not None and len(fp.split(":")) == 16
    assert h.fingerprint("ssh-ed25519 !!!") is None
