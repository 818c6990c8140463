"""playbooks/site.yml's decision of which roles a host gets (anvil.hetzner.site_concerns)."""

from __future__ import annotations

import pytest

from ansible_collections.anvil.hetzner.plugins.filter.site_concerns import ROLES, site_concerns

ALL = list(ROLES)
EVERY_HOST = ["base", "firewall", "node_exporter"]


@pytest.mark.parametrize(("groups", "extra", "roles"), [
    ([], {}, EVERY_HOST),
    (["db"], {}, EVERY_HOST),
    (["docker"], {}, ["base", "firewall", "docker", "node_exporter"]),
    (["web"], {}, ["base", "firewall", "docker", "caddy", "node_exporter"]),
    (["app"], {}, ["base", "firewall", "docker", "caddy", "node_exporter"]),
    (["web"], {"app_deploy_name": "shop"}, ["base", "firewall", "docker", "caddy", "node_exporter", "app_deploy"]),
    (["web"], {"app_deploy_name": "  "}, ["base", "firewall", "docker", "caddy", "node_exporter"]),
    # an app described for a host outside web/app (group_vars/all) is not deployed there
    (["db"], {"app_deploy_name": "shop"}, EVERY_HOST),
    (["db"], {"postgres_backup_age_recipients": ["age1x"]}, ["base", "firewall", "node_exporter", "postgres_backup"]),
    (["db"], {"postgres_backup_age_recipients": []}, EVERY_HOST),
    (["web", "db", "monitoring"], {"app_deploy_name": "shop", "postgres_backup_age_recipients": ["age1x"]}, ALL),
    (["monitoring"], {}, ["base", "firewall", "node_exporter", "monitoring"]),
    # Prometheus through Caddy: Caddy on the monitoring server, not Docker
    (["monitoring"], {"monitoring_web_domain": "prometheus.example.com"},
     ["base", "firewall", "caddy", "node_exporter", "monitoring"]),
    (["monitoring"], {"monitoring_web_domain": ""}, ["base", "firewall", "node_exporter", "monitoring"]),
    (["db"], {"monitoring_web_domain": "prometheus.example.com"}, EVERY_HOST),
])
def test_groups_decide(groups, extra, roles):
    out = site_concerns({"group_names": groups, **extra})
    assert out["roles"] == roles
    assert out["errors"] == []
    assert out["toggles"] == {f"anvil_{r}": r in roles for r in ROLES[1:]}


@pytest.mark.parametrize("value", [True, "true", "yes", "on", "1", 1, "True", "y"])
def test_a_toggle_turns_a_role_on_whatever_the_groups(value):
    for role in ROLES[1:]:
        out = site_concerns({"group_names": [], f"anvil_{role}": value})
        assert role in out["roles"], (role, value)
        assert out["toggles"][f"anvil_{role}"] is True


@pytest.mark.parametrize("value", [False, "false", "no", "off", "0", 0, "False", "n"])
def test_a_toggle_turns_a_role_off_whatever_the_groups(value):
    host = {"group_names": ["web", "docker"], "app_deploy_name": "shop", "postgres_backup_age_recipients": ["age1x"]}
    for role in ROLES[1:]:
        out = site_concerns({**host, f"anvil_{role}": value})
        assert role not in out["roles"], (role, value)
        assert out["toggles"][f"anvil_{role}"] is False
        assert "base" in out["roles"]


def test_an_unset_toggle_is_the_group_rule():
    assert "docker" in site_concerns({"group_names": ["web"], "anvil_docker": None})["roles"]


@pytest.mark.parametrize("value", ["maybe", "", "flase", 2, [], {}, 0.5])
def test_a_toggle_that_is_not_a_boolean_is_refused_naming_it(value):
    for role in ROLES[1:]:
        out = site_concerns({"group_names": ["web"], f"anvil_{role}": value})
        assert len(out["errors"]) == 1, (role, value, out)
        assert out["errors"][0].startswith(f"anvil_{role}: "), out["errors"]


def test_base_has_no_toggle_and_always_comes_first():
    out = site_concerns({"group_names": [], "anvil_base": False})
    assert out["roles"][0] == "base"
    assert "anvil_base" not in out["toggles"]


def test_not_a_mapping_is_an_error():
    assert site_concerns("web-1")["errors"]


# -- site_app_services: a later site.yml keeps the live release ------------------------------------
from ansible_collections.anvil.hetzner.plugins.filter.site_app_services import site_app_services  # noqa: E402

SERVICES = [{"name": "web", "image": "reg:5000/demo/shop", "tag": "v1", "port": 8080, "environment": {"A": "1"}},
            {"name": "worker", "image": "reg:5000/demo/shop", "tag": "v1", "command": ["worker"]},
            {"name": "pinned", "image": "reg/x", "digest": "sha256:" + "a" * 64}]


def history(live_images: dict, status: str = "live") -> str:
    import json
    return json.dumps({"app": "shop", "live": 2, "releases": [
        {"id": 1, "status": "replaced", "services": [{"name": "web", "image": "reg:5000/demo/shop:v0"}]},
        {"id": 2, "status": status, "version": "v2",
         "services": [{"name": n, "image": i} for n, i in live_images.items()]}]})


def test_a_first_deploy_takes_the_services_as_written():
    for text in ("", "{}", "not json", '{"live": 3, "releases": []}', history({"web": "reg:5000/demo/shop:v2"}, "failed")):
        assert site_app_services(SERVICES, history=text) == SERVICES, text


def test_a_later_run_keeps_the_live_release_and_applies_the_rest():
    live = {"web": "reg:5000/demo/shop:v2", "worker": "reg:5000/demo/shop:v2", "pinned": "reg/x@sha256:" + "b" * 64}
    out = site_app_services(SERVICES, history=history(live))
    assert [s.get("tag") for s in out] == ["v2", "v2", None]
    assert out[2]["digest"] == "sha256:" + "b" * 64 and "tag" not in out[2]
    assert out[0]["environment"] == {"A": "1"} and out[0]["port"] == 8080 and out[1]["command"] == ["worker"]


def test_a_service_the_live_release_does_not_run_is_taken_as_written():
    out = site_app_services(SERVICES, history=history({"web": "reg:5000/demo/shop:v2"}))
    assert out[1] == SERVICES[1] and out[0]["tag"] == "v2"


def test_a_live_digest_replaces_a_written_tag():
    out = site_app_services(SERVICES[:1], history=history({"web": "reg:5000/demo/shop@sha256:" + "c" * 64}))
    assert out[0]["digest"] == "sha256:" + "c" * 64 and "tag" not in out[0]


def test_app_version_sets_every_tag_as_deploy_yml_does():
    out = site_app_services(SERVICES, history=history({"web": "reg:5000/demo/shop:v2"}), version="v3")
    assert [s.get("tag") for s in out] == ["v3", "v3", None]


def test_bad_input_is_left_to_the_roles_check():
    assert site_app_services("nope") == "nope"
    assert site_app_services([{"name": "web"}, "x"], history=history({"web": "reg/shop"})) == [{"name": "web"}, "x"]
