"""The base role's input check (filter anvil.hetzner.base_errors): lockout guards and formats."""

from __future__ import annotations

import pytest
from ansible_collections.anvil.hetzner.plugins.filter.base_errors import FilterModule, base_accounts_to_change, base_errors

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID3VHxF/Az01zod1MBwV7V3P53WIpstPgZTETc47VKy/ alice@laptop"
GOOD = {
    "base_deploy_user": "deploy",
    "base_deploy_user_authorized_keys": [KEY],
    "base_ssh_port": 22,
    "base_ssh_permit_root_login": "no",
    "base_ssh_password_authentication": False,
    "base_timezone": "Etc/UTC",
    "base_users": [{"name": "ops", "authorized_keys": [KEY]}],
}
HOST = {"distribution": "Debian", "major": "12", "sshd_ports": [22], "timezone_exists": True,
        "connection_user": "root", "over_ssh": True, "ansible_port": 22}


def errors(host=None, **changes):
    return base_errors({**GOOD, **changes}, host=HOST if host is None else host)


def test_good_input():
    assert errors() == []
    assert "base_errors" in FilterModule().filters()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base_deploy_user": "root"}, "base_deploy_user: may not be root"),
        ({"base_deploy_user_authorized_keys": []}, "base_deploy_user_authorized_keys: is empty while root or password"),
        ({"base_deploy_user_authorized_keys": ["nope"]}, "base_deploy_user_authorized_keys[0]: is not an OpenSSH"),
        ({"base_ssh_allow_users": ["ops"], "base_users": []}, None),
        ({"base_users_absent": ["root"]}, "may not name root"),
        ({"base_users_locked": ["ops"]}, "name accounts the role also creates: ['ops']"),
        ({"base_users": [{"name": "deploy"}]}, "repeats a name"),
        ({"base_users": [{"name": "Bad User"}]}, "base_users[0].name: 'Bad User' is not a user name"),
        ({"base_users": [{"name": "ops", "shell": "bash"}]}, "base_users[0].shell: 'bash'"),
        ({"base_ssh_port": 70000}, "base_ssh_port: 70000 is not a port"),
        ({"base_ssh_max_auth_tries": 10}, "base_ssh_max_auth_tries: 10 must be a whole number from 1 to 6"),
        ({"base_hostname": "Web_1"}, "base_hostname: 'Web_1'"),
        ({"base_unattended_upgrades_reboot_time": "25:00"}, "base_unattended_upgrades_reboot_time"),
        ({"base_sysctl_extra": {"kernel": 1}}, "base_sysctl_extra: {'kernel': 1} has keys"),
        ({"base_ssh_kex_algorithms": []}, "base_ssh_kex_algorithms: must not be empty"),
        ({"base_umask": "999"}, "base_umask: '999'"),
        # issue 23
        ({"base_ssh_client_alive_interval": 0, "base_ssh_client_alive_count_max": 0},
         "base_ssh_client_alive_interval: 0 must be a whole number from 1 to 3600"),
        ({"base_ssh_client_alive_count_max": 0}, "base_ssh_client_alive_count_max: 0 must be a whole number from 1"),
        ({"base_ssh_client_alive_interval": 1800, "base_ssh_client_alive_count_max": 3}, "1800 x 3 = 5400 s"),
        ({"base_shell_timeout": 30}, "base_shell_timeout: 30 must be 0 (no shell timeout)"),
        ({"base_shell_timeout": 0}, None),
        ({"base_banner_text": "Authorised\x1b[2J\n"}, "base_banner_text: 'Authorised\\x1b[2J\\n' holds control characters (U+001B)"),
        ({"base_banner_text": "Host \\l\n"}, "holds a backslash"),
        ({"base_banner_text": "  \n"}, "base_banner_text: '  \\n' must be a non-empty text"),
        ({"base_banner_text": "Line one\n\tLine two\n"}, None),
        ({"base_banner_text": "x" * 2001}, "2001 characters long"),
        ({"base_sudo_umask": "022"}, "base_sudo_umask: '022' is not four octal digits"),
        ({"base_sudo_logfile": "sudo.log"}, "base_sudo_logfile: 'sudo.log' is not an absolute path"),
    ],
)
def test_bad_input_is_named(changes, message):
    found = errors(**changes)
    if message is None:
        assert found == []  # AllowUsers always holds the deploy user
    else:
        assert any(message in e for e in found), found


def test_root_as_deploy_user_is_refused_even_with_root_login_open():
    found = errors(base_deploy_user="root", base_ssh_permit_root_login="yes")
    assert any(e.startswith("base_deploy_user: may not be root") for e in found)


def test_connection_user_who_would_be_shut_out():
    found = errors(host={**HOST, "connection_user": "alice"})
    assert any("connects as 'alice'" in e for e in found)
    assert errors(host={**HOST, "connection_user": "ops"}) == []


def test_port_move_through_a_forward_is_refused():
    found = errors(base_ssh_port=2222, host={**HOST, "ansible_port": 2200})
    assert any(e.startswith("base_ssh_port: would move sshd from port 22 to 2222") for e in found)
    assert errors(base_ssh_port=2222) == []
    assert errors(base_ssh_port=2222, host={**HOST, "over_ssh": False, "ansible_port": 2200}) == []


def test_unknown_time_zone_and_unsupported_os():
    assert any("not a time zone known to this host" in e for e in errors(host={**HOST, "timezone_exists": False}))
    assert any("unsupported system Debian 11" in e for e in errors(host={**HOST, "major": "11"}))


# ---------------------------------------------------------------------------------------------
# The security suite in apt's sources (filter base_security_source, host_probe's source parsers).
from ansible_collections.anvil.hetzner.plugins.filter.base_errors import base_security_source  # noqa: E402
from ansible_collections.anvil.hetzner.plugins.modules.host_probe import parse_deb822, parse_one_line  # noqa: E402

DEBOOTSTRAP_12 = parse_one_line("deb http://deb.debian.org/debian bookworm main\n", "/etc/apt/sources.list")
CLOUD_13 = parse_deb822("""Types: deb deb-src
URIs: https://deb.debian.org/debian
Suites: trixie trixie-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: https://deb.debian.org/debian-security
Suites: trixie-security
Components: main contrib
""", "/etc/apt/sources.list.d/debian.sources")


def test_sources_are_parsed_in_both_formats():
    assert DEBOOTSTRAP_12 == [{"uris": ["http://deb.debian.org/debian"], "suites": ["bookworm"], "components": ["main"],
                               "file": "/etc/apt/sources.list"}]
    assert [e["suites"] for e in CLOUD_13] == [["trixie", "trixie-updates"], ["trixie-security"]]
    assert parse_one_line("# deb http://x/debian bookworm-security main\ndeb [arch=amd64] http://x/debian bookworm main",
                          "f")[0]["suites"] == ["bookworm"]
    assert parse_deb822("Types: deb\nEnabled: no\nURIs: http://x\nSuites: a\n", "f") == []


def test_missing_security_suite_is_added_beside_the_main_one():
    assert base_security_source(DEBOOTSTRAP_12, "Debian", "bookworm") == {
        "missing": True, "suite": "bookworm-security", "uri": "http://deb.debian.org/debian-security",
        "components": ["main"], "keyring": "/usr/share/keyrings/debian-archive-keyring.gpg"}
    assert base_security_source(CLOUD_13, "Debian", "trixie")["missing"] is False
    ubuntu = parse_one_line("deb http://archive.ubuntu.com/ubuntu noble main universe", "f")
    assert base_security_source(ubuntu, "Ubuntu", "noble")["uri"] == "http://archive.ubuntu.com/ubuntu"
    assert base_security_source(DEBOOTSTRAP_12, "Debian", "bookworm", "http://m.example/sec")["uri"] == "http://m.example/sec"


def test_missing_security_suite_without_permission_to_add_it_is_refused():
    host = {**HOST, "security_source": base_security_source(DEBOOTSTRAP_12, "Debian", "bookworm")}
    assert errors(host=host) == []
    found = errors(host=host, base_apt_security_source=False)
    assert len(found) == 1 and found[0].startswith("base_apt_security_source: is false, and apt's sources lack bookworm-security")
    assert errors(host=host, base_apt_security_source=False, base_unattended_upgrades_enabled=False) == []
    nothing = {**HOST, "security_source": base_security_source([], "Debian", "bookworm")}
    assert errors(host=nothing)[0].startswith("base_apt_security_uri: apt's sources lack bookworm-security")


def test_accounts_to_change_are_the_missing_and_the_different_ones():
    accounts = [{"name": "deploy", "shell": "/bin/bash", "groups": [], "ssh": True},
                {"name": "ops", "shell": "/bin/bash", "groups": ["adm"], "ssh": True},
                {"name": "svc", "shell": "/bin/sh", "groups": [], "ssh": False}]
    same = {"exists": True, "shell": "/bin/bash", "groups": ["deploy", "ssh-users"], "max_days": 99999}
    users = {"deploy": same, "ops": {**same, "groups": ["ops", "ssh-users", "adm", "docker"]},
             "svc": {**same, "shell": "/bin/sh", "groups": ["svc"]}}
    assert base_accounts_to_change(accounts, users, "ssh-users", 99999) == []
    # each difference alone makes the account one to change
    for name, found in (("deploy", {**same, "exists": False}), ("deploy", {**same, "shell": "/bin/sh"}),
                        ("ops", {**same, "groups": ["ops", "ssh-users"]}), ("deploy", {**same, "groups": ["deploy"]}),
                        ("svc", {**users["svc"], "max_days": None}), ("svc", {**users["svc"], "max_days": 90})):
        changed = base_accounts_to_change(accounts, {**users, name: found}, "ssh-users", "99999")
        assert [a["name"] for a in changed] == [name], (name, found)
    assert [a["name"] for a in base_accounts_to_change(accounts, {}, "ssh-users", 99999)] == ["deploy", "ops", "svc"]
