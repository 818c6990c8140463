"""The monitoring role's input check and the configuration it builds (plugins/filter/monitoring_errors.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.anvil.hetzner.plugins.filter import monitoring_errors as m

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((ROOT / "roles/monitoring/defaults/main.yml").read_text())
OPS = {"name": "ops", "type": "webhook", "url": "https://hooks.example.com/ops-token"}
GOOD = {**DEFAULTS, "monitoring_receivers": [OPS]}
HOST = {"distribution": "Debian", "major": "12", "version": "12.8", "addresses": ["10.0.1.5", "127.0.0.1"],
        "listening": [], "groups": ["all", "web"], "targets": {}, "exists": {}}


def errors(host=None, **changes):
    return m.monitoring_errors({**GOOD, **changes}, host)


def test_the_defaults_with_one_receiver_pass():
    assert errors() == []
    assert errors(HOST, hcloud_private_ipv4="10.0.1.5") == []


def test_no_receiver_is_refused_alerts_would_reach_no_one():
    out = m.monitoring_errors(DEFAULTS)
    assert out and out[0].startswith("monitoring_receivers: is empty") and "no one" in out[0]


@pytest.mark.parametrize(("receiver", "where"), [
    ({"name": "ops", "type": "webhook"}, "monitoring_receivers[0].url"),
    ({"name": "ops", "type": "webhook", "url": "hooks.example.com/x"}, "monitoring_receivers[0].url"),
    ({"name": "ops", "type": "slack", "url": "http://hooks.slack.com/services/T/B/secret-x"}, "monitoring_receivers[0].url"),
    ({"name": "ops", "type": "slack", "url": "https://hooks.slack.com/x", "channel": "ops room"},
     "monitoring_receivers[0].channel"),
    ({"name": "tg", "type": "telegram", "chat_id": 5}, "monitoring_receivers[0].bot_token"),
    ({"name": "tg", "type": "telegram", "bot_token": "not a token", "chat_id": 5}, "monitoring_receivers[0].bot_token"),
    ({"name": "tg", "type": "telegram", "bot_token": "123:abc", "chat_id": "room"}, "monitoring_receivers[0].chat_id"),
    ({"name": "mail", "type": "email", "to": "nobody"}, "monitoring_receivers[0].to"),
    ({"name": "mail", "type": "email", "to": "ops@example.com"}, "monitoring_receivers[0]"),
    ({"name": "Ops Team", "type": "webhook", "url": "https://a.example/"}, "monitoring_receivers[0].name"),
    ({"name": "anvil-heartbeat", "type": "webhook", "url": "https://a.example/"}, "monitoring_receivers[0].name"),
    ({"name": "ops", "type": "pagerduty", "url": "https://a.example/"}, "monitoring_receivers[0].type"),
    ({"name": "ops", "type": "webhook", "url": "https://a.example/", "channel": "#x"}, "monitoring_receivers[0]"),
    ({"name": "ops", "type": "webhook", "url": "https://a.example/", "send_resolved": "sometimes"},
     "monitoring_receivers[0].send_resolved"),
])
def test_a_bad_receiver_is_refused_naming_it_and_never_showing_a_token(receiver, where):
    out = errors(monitoring_receivers=[receiver])
    assert any(e.startswith(where) for e in out), out
    assert not any("secret-x" in e for e in out)


def test_a_receiver_name_twice_is_refused():
    out = errors(monitoring_receivers=[OPS, dict(OPS, url="https://b.example/")])
    assert any(e.startswith("monitoring_receivers[1].name") for e in out), out


@pytest.mark.parametrize(("route", "where"), [
    ({"receiver": "ops", "matchers": ["severity = very critical"]}, "monitoring_routes[0].matchers[0]"),
    ({"receiver": "ops", "matchers": ["severity"]}, "monitoring_routes[0].matchers[0]"),
    ({"receiver": "ops", "matchers": ['9severity="x"']}, "monitoring_routes[0].matchers[0]"),
    ({"receiver": "ops", "matchers": []}, "monitoring_routes[0].matchers"),
    ({"receiver": "ops", "matchers": ['severity="critical"'], "match": {"severity": "critical"}}, "monitoring_routes[0]"),
    ({"receiver": "nobody", "matchers": ['severity="critical"']}, "monitoring_routes[0].receiver"),
    ({"receiver": "ops", "matchers": ['severity="critical"'], "repeat_interval": "often"},
     "monitoring_routes[0].repeat_interval"),
    ({"receiver": "ops", "matchers": ['severity="critical"'], "continue": "yes please"}, "monitoring_routes[0].continue"),
])
def test_a_bad_route_is_refused_naming_it(route, where):
    out = errors(monitoring_routes=[route])
    assert any(e.startswith(where) for e in out), out


def test_good_matchers_pass():
    for matcher in ('severity="critical"', 'alertname=~"Backup.*"', 'instance!="web-1"', "severity=critical",
                    'team !~ "db|ops"'):
        assert errors(monitoring_routes=[{"receiver": "ops", "matchers": [matcher]}]) == [], matcher


@pytest.mark.parametrize("value", ["15 days", "15D", "1h30", "", "-5m", 30])
def test_a_retention_that_is_not_a_duration_is_refused(value):
    assert any(e.startswith("monitoring_retention_time") for e in errors(monitoring_retention_time=value))


@pytest.mark.parametrize("value", ["30d", "1w", "1y2w", "90m", "36h", "1d12h"])
def test_prometheus_durations_pass(value):
    assert errors(monitoring_retention_time=value) == []


def test_smtp_is_checked_and_its_password_never_shown():
    mail = [{"name": "mail", "type": "email", "to": "ops@example.com"}]
    good = {"smarthost": "smtp.example.com:587", "from": "alerts@example.com", "username": "alerts",
            "password": "smtp-pw-secret"}
    assert errors(monitoring_receivers=mail, monitoring_smtp=good) == []
    out = errors(monitoring_receivers=mail, monitoring_smtp={**good, "require_tls": False})
    assert any("clear text" in e for e in out) and not any("smtp-pw-secret" in e for e in out)
    out = errors(monitoring_receivers=mail, monitoring_smtp={**good, "smarthost": "smtp.example.com"})
    assert any(e.startswith("monitoring_smtp.smarthost") for e in out)
    out = errors(monitoring_receivers=mail, monitoring_smtp={**good, "password": "pw-secret\n"})
    assert any(e.startswith("monitoring_smtp.password") for e in out) and not any("pw-secret" in e for e in out)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "203.0.113.7"])
def test_a_public_or_wildcard_listener_is_refused(address):
    out = errors(HOST, monitoring_listen_address=address)
    assert any(e.startswith("monitoring_listen_address") and "no login" in e for e in out), out


def test_an_address_the_host_lacks_is_refused():
    out = errors(HOST, monitoring_listen_address="10.0.9.9")
    assert any(e.startswith("monitoring_listen_address") and "not an address of this host" in e for e in out)


def test_ports_taken_by_a_daemon_another_role_or_each_other_are_refused():
    sshd = [{"address": "0.0.0.0", "port": 22, "process": "sshd", "pid": 1}]
    out = errors({**HOST, "listening": sshd}, hcloud_private_ipv4="10.0.1.5", monitoring_prometheus_port=22)
    assert any(e.startswith("monitoring_prometheus_port") for e in out), out
    out = errors(HOST, hcloud_private_ipv4="10.0.1.5", monitoring_alertmanager_port=9090)
    assert any(e.startswith("monitoring_alertmanager_port") for e in out), out
    own = [{"address": "10.0.1.5", "port": 9090, "process": "prometheus", "pid": 7}]
    assert errors({**HOST, "listening": own}, hcloud_private_ipv4="10.0.1.5") == []
    # a sandboxed daemon's socket shows no process: it is the role's own while that daemon runs
    hidden = [{"address": "10.0.1.5", "port": 9093, "process": "", "pid": None}]
    running = {"prometheus-alertmanager": {"active": True, "enabled": True}}
    assert errors({**HOST, "listening": hidden, "services": running}, hcloud_private_ipv4="10.0.1.5") == []
    out = errors({**HOST, "listening": hidden, "services": {}}, hcloud_private_ipv4="10.0.1.5")
    assert any(e.startswith("monitoring_alertmanager_port") for e in out), out


def test_a_target_at_a_public_address_without_tls_is_refused():
    host = {**HOST, "targets": {"web-1": {"address": "203.0.113.9", "tls": False, "basic_auth": True},
                                "db-1": {"address": "198.51.100.3", "tls": True, "basic_auth": True},
                                "app-1": {"address": "10.0.1.7", "tls": False, "basic_auth": True}}}
    out = errors(host, hcloud_private_ipv4="10.0.1.5")
    assert len([e for e in out if e.startswith("monitoring_targets_groups")]) == 1 and "web-1" in out[0], out


def test_an_unknown_group_and_a_missing_ca_are_refused():
    out = errors(HOST, hcloud_private_ipv4="10.0.1.5", monitoring_targets_groups=["web", "nope"],
                 monitoring_blackbox_ca_file="/etc/ssl/none.pem")
    assert any(e.startswith("monitoring_targets_groups") and "nope" in e for e in out)
    assert any(e.startswith("monitoring_blackbox_ca_file") for e in out)


def test_a_heartbeat_faster_than_alertmanager_groups_is_refused_with_the_other_errors():
    out = errors(monitoring_heartbeat_interval="30s", monitoring_retention_time="soon")
    assert any(e.startswith("monitoring_heartbeat_interval") for e in out), out
    assert any(e.startswith("monitoring_retention_time") for e in out), out


def test_zero_intervals_alertmanager_refuses_are_refused():
    assert any(e.startswith("monitoring_repeat_interval") for e in errors(monitoring_repeat_interval="0s"))
    assert any(e.startswith("monitoring_group_interval") for e in errors(monitoring_group_interval="0m"))
    assert errors(monitoring_group_wait="0s") == []
    route = {"receiver": "ops", "matchers": ['severity="critical"'], "repeat_interval": "0s"}
    assert any(e.startswith("monitoring_routes[0].repeat_interval") for e in errors(monitoring_routes=[route]))


def test_email_needs_its_address_and_smtp_its_sender():
    smtp = {"smarthost": "smtp.example.com:587"}
    out = errors(monitoring_receivers=[{"name": "mail", "type": "email"}], monitoring_smtp=smtp)
    assert any(e.startswith("monitoring_receivers[0].to") for e in out), out
    assert any(e.startswith("monitoring_smtp.from") for e in out), out


def test_group_by_every_label_and_binary_sizes_pass():
    assert errors(monitoring_group_by=["..."], monitoring_retention_size="10GiB") == []


def test_the_alertmanager_config_routes_the_watchdog_first_and_inhibits_a_down_hosts_alerts():
    config = m.monitoring_alertmanager_config({**GOOD, "monitoring_heartbeat_url": "https://hc.example/ping/x",
                                               "monitoring_routes": [{"receiver": "ops",
                                                                      "matchers": ['severity="critical"']}]})
    route = config["route"]
    assert route["receiver"] == "ops" and route["group_by"] == ["alertname", "instance"]
    assert route["routes"][0]["matchers"] == ['alertname="Watchdog"'] and route["routes"][0]["receiver"] == "anvil-heartbeat"
    assert route["routes"][1] == {"receiver": "ops", "matchers": ['severity="critical"']}
    # last, a route to the default receiver: an alert a route took with continue: true reaches it too
    assert route["routes"][-1] == {"receiver": "ops", "matchers": ['alertname=~".+"']}
    assert {"source_matchers": ['alertname="InstanceDown"'], "target_matchers": ['alertname!="InstanceDown"'],
            "equal": ["instance"]} in config["inhibit_rules"]
    names = [r["name"] for r in config["receivers"]]
    assert names == ["ops", "anvil-null", "anvil-heartbeat"]
    assert config["receivers"][2]["webhook_configs"] == [{"url": "https://hc.example/ping/x", "send_resolved": False}]
    # without a heartbeat URL the Watchdog goes to a receiver that sends nothing, never to a person
    quiet = m.monitoring_alertmanager_config(GOOD)
    assert quiet["route"]["routes"] == [quiet["route"]["routes"][0]] and quiet["route"]["routes"][0]["receiver"] == "anvil-null"
    assert m.monitoring_alertmanager_config({**GOOD, "monitoring_inhibit_when_down": "false"})["inhibit_rules"] == []


def test_each_receiver_type_becomes_alertmanagers_config():
    receivers = [OPS, {"name": "slack", "type": "slack", "url": "https://hooks.slack.com/x", "channel": "#ops"},
                 {"name": "tg", "type": "telegram", "bot_token": "123:abc", "chat_id": "-100", "send_resolved": False},
                 {"name": "mail", "type": "email", "to": "ops@example.com"}]
    smtp = {"smarthost": "smtp.example.com:587", "from": "alerts@example.com", "username": "a", "password": "b"}
    config = m.monitoring_alertmanager_config({**GOOD, "monitoring_receivers": receivers, "monitoring_smtp": smtp})
    by = {r["name"]: r for r in config["receivers"]}
    assert by["slack"]["slack_configs"] == [{"api_url": "https://hooks.slack.com/x", "send_resolved": True, "channel": "#ops"}]
    assert by["tg"]["telegram_configs"] == [{"bot_token": "123:abc", "chat_id": -100, "send_resolved": False}]
    assert by["mail"]["email_configs"] == [{"to": "ops@example.com", "send_resolved": True}]
    assert config["global"] == {"smtp_smarthost": "smtp.example.com:587", "smtp_from": "alerts@example.com",
                                "smtp_require_tls": True, "smtp_auth_username": "a", "smtp_auth_password": "b"}


def test_the_prometheus_config_keeps_the_password_out_and_probes_through_loopback():
    config = m.monitoring_prometheus_config({**GOOD, "hcloud_private_ipv4": "10.0.1.5"}, "mon-1",
                                            {"username": "prometheus", "password": "scrape-secret"},
                                            ["https://shop.example.com/"])
    assert "scrape-secret" not in yaml.safe_dump(config)
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["node"]["file_sd_configs"] == [{"files": ["/etc/prometheus/file_sd/anvil-fleet.json"]}]
    assert jobs["node"]["basic_auth"] == {"username": "prometheus",
                                          "password_file": "/etc/prometheus/anvil-secrets/node_exporter_password"}
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["10.0.1.5:9090"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["10.0.1.5:9093"]
    assert jobs["blackbox"]["relabel_configs"][-1] == {"target_label": "__address__", "replacement": "127.0.0.1:9115"}
    assert "blackbox" not in {j["job_name"] for j in
                              m.monitoring_prometheus_config(GOOD, "mon-1", {}, [])["scrape_configs"]}


def test_the_probed_urls_come_from_the_inventorys_sites_and_apps_once_each():
    hostvars = {"web-1": {"caddy_sites": [{"domains": ["shop.example.com", "*.example.com"]}],
                          "app_deploy_domains": ["shop.example.com", "api.example.com"]},
                "web-2": {"caddy_sites": [{"domains": ["http://plain.example.com"]}]}}
    assert m.monitoring_blackbox_targets(hostvars, ["web-1", "web-2"], ["https://status.example.org/"]) == [
        "https://shop.example.com/", "https://api.example.com/", "https://status.example.org/"]


def test_hosts_without_node_exporter_are_not_scraped():
    groups = {"all": ["a", "b", "c"], "web": ["a"]}
    hostvars = {"a": {}, "b": {"anvil_node_exporter": "false"}, "c": {"anvil_node_exporter": True}}
    assert m.monitoring_targets(GOOD, groups, hostvars) == ["a", "c"]
    assert m.monitoring_targets({**GOOD, "monitoring_targets_groups": ["web"]}, groups, hostvars) == ["a"]


def test_the_blackbox_job_is_scraped_no_faster_than_its_timeout():
    fast = {**GOOD, "monitoring_scrape_interval": "5s", "monitoring_blackbox_timeout": "10s"}
    job = [j for j in m.monitoring_prometheus_config(fast, "mon-1", {}, ["https://a.example/"])["scrape_configs"]
           if j["job_name"] == "blackbox"][0]
    assert (job["scrape_interval"], job["scrape_timeout"]) == ("10s", "10s")
    job = [j for j in m.monitoring_prometheus_config(GOOD, "mon-1", {}, ["https://a.example/"])["scrape_configs"]
           if j["job_name"] == "blackbox"][0]
    assert (job["scrape_interval"], job["scrape_timeout"]) == ("30s", "10s")


def test_the_scrape_credentials_come_from_the_fleet_when_not_given():
    hostvars = {"a": {}, "b": {"node_exporter_basic_auth_users": [{"username": "prom", "password": "pw"}]}}
    assert m.monitoring_scrape_auth(GOOD, hostvars, ["a", "b"]) == {"username": "prom", "password": "pw"}
    given = {**GOOD, "monitoring_node_exporter_basic_auth": {"username": "x", "password": "y"}}
    assert m.monitoring_scrape_auth(given, hostvars, ["a", "b"]) == {"username": "x", "password": "y"}
    assert m.monitoring_scrape_auth(GOOD, {"a": {}}, ["a"]) == {}


RULES_SRC = ROOT / "roles/node_exporter/files/alerts"


def test_rule_items_carry_each_shipped_file_and_the_tls_warning_at_the_chosen_days():
    sources = sorted(str(p) for p in RULES_SRC.glob("*.rules.yml"))
    items = m.monitoring_rule_items(sources, "/etc/prometheus/rules.d/anvil", "3")  # -e gives a string
    assert [i["dest"] for i in items] == [f"/etc/prometheus/rules.d/anvil/{Path(s).name}" for s in sources]
    for item in items:
        text = Path(item["src"]).read_text()
        if item["dest"].endswith("/anvil-tls.rules.yml"):
            # both expressions of the warning move; the critical 2-day alert stays as shipped
            assert item["content"].count("< 3 * 86400") == 2 and "14 * 86400" not in item["content"]
            assert item["content"].count("< 2 * 86400") == text.count("< 2 * 86400") == 2
            assert yaml.safe_load(item["content"])["groups"][0]["rules"][0]["alert"] == "TLSCertificateExpiringSoon"
        else:
            assert item["content"] == text
        assert item["mode"] == "0644"


@pytest.mark.parametrize("days", [0, -1, "soon", None, True])
def test_rule_items_refuse_days_that_are_not_a_whole_positive_number(days):
    with pytest.raises(m.AnsibleFilterError, match="tls_expiry_days"):
        m.monitoring_rule_items([str(RULES_SRC / "anvil-tls.rules.yml")], "/r", days)


def test_rule_items_refuse_tls_rules_whose_thresholds_moved(tmp_path):
    changed = tmp_path / "anvil-tls.rules.yml"
    changed.write_text((RULES_SRC / "anvil-tls.rules.yml").read_text().replace("< 14 * 86400", "< 15 * 86400", 1))
    with pytest.raises(m.AnsibleFilterError, match="found 1"):
        m.monitoring_rule_items([str(changed)], "/r", 21)


def test_a_ca_file_that_holds_no_certificate_is_refused():
    bad = {"ok": False, "count": 0, "error": "[X509: NO_CERTIFICATE_OR_CRL_FOUND] no certificate or crl found"}
    for name in ("monitoring_node_exporter_tls_ca_file", "monitoring_blackbox_ca_file"):
        variables = dict(DEFAULTS, **{name: "/etc/ssl/anvil/ca.pem"})
        host = {"exists": {"/etc/ssl/anvil/ca.pem": True}, "certificates": {"/etc/ssl/anvil/ca.pem": bad}}
        errors = [e for e in m.monitoring_errors(variables, host) if e.startswith(name)]
        assert errors and "holds no CA certificate" in errors[0] and "NO_CERTIFICATE" in errors[0], errors
        good = dict(host, certificates={"/etc/ssl/anvil/ca.pem": {"ok": True, "count": 1, "error": ""}})
        assert not [e for e in m.monitoring_errors(variables, good) if e.startswith(name)]
        missing = {"exists": {"/etc/ssl/anvil/ca.pem": False}, "certificates": {"/etc/ssl/anvil/ca.pem": bad}}
        assert [e for e in m.monitoring_errors(variables, missing) if e.startswith(name)] == \
            [f"{name}: /etc/ssl/anvil/ca.pem does not exist on the host"]


WEB = {"monitoring_web_domain": "prometheus.example.com",
       "monitoring_web_users": [{"username": "ops", "password": "web-secret-1234"}]}
CADDY_HOST = {**HOST, "exists": {"/usr/bin/caddy": True, "/etc/caddy/sites.d": True}}


def test_access_through_caddy_with_a_user_and_caddy_on_the_host_passes():
    assert errors(CADDY_HOST, hcloud_private_ipv4="10.0.1.5", **WEB) == []


@pytest.mark.parametrize(("changes", "where"), [
    ({"monitoring_web_users": []}, "monitoring_web_users: monitoring_web_domain needs at least one user"),
    ({"monitoring_web_users": [{"username": "ops", "password": "short"}]}, "monitoring_web_users[0].password"),
    ({"monitoring_web_users": [{"username": "o:ps", "password": "web-secret-1234"}]}, "monitoring_web_users[0].username"),
    ({"monitoring_web_domain": "Prometheus.Example.com"}, "monitoring_web_domain"),
    ({"monitoring_web_domain": "https://prometheus.example.com/"}, "monitoring_web_domain"),
])
def test_bad_access_through_caddy_is_refused_without_showing_a_password(changes, where):
    out = errors(CADDY_HOST, hcloud_private_ipv4="10.0.1.5", **{**WEB, **changes})
    assert any(e.startswith(where) for e in out), out
    assert not any("web-secret" in e or "short" in e for e in out)


@pytest.mark.parametrize("missing", ["/usr/bin/caddy", "/etc/caddy/sites.d"])
def test_a_domain_on_a_host_without_caddy_is_refused_unless_in_check_mode(missing):
    host = {**CADDY_HOST, "exists": {**CADDY_HOST["exists"], missing: False}}
    out = errors(host, hcloud_private_ipv4="10.0.1.5", **WEB)
    assert any("anvil.hetzner.caddy has not run" in e and missing in e for e in out), out
    assert errors({**host, "check_mode": True}, hcloud_private_ipv4="10.0.1.5", **WEB) == []


def test_a_domain_the_hosts_caddy_serves_already_is_refused():
    out = errors({**CADDY_HOST, "caddy_domains": ["shop.example.com", "prometheus.example.com"]},
                 hcloud_private_ipv4="10.0.1.5", **WEB)
    assert any("already a site of this host's Caddy" in e for e in out), out


def test_users_without_a_domain_are_checked_too():
    out = errors(CADDY_HOST, monitoring_web_users=[{"username": "ops", "password": "short"}])
    assert any(e.startswith("monitoring_web_users[0].password") for e in out), out
