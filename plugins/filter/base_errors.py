# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the base role's input: formats, ranges and the combinations that would lock the operator out."""

from __future__ import annotations

# Documentation: one plugins/filter/<filter name>.yml per filter of this file.

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.anvil.hetzner.plugins.plugin_utils import audit_rules
from ansible_collections.anvil.hetzner.plugins.plugin_utils import checks as c


_USER = re.compile(c.USER_NAME_RE)
# authorized_keys lines checked for real (options prefix, type, base64, key size); never echoed
_KEY_CHECK = c.AUTHORIZED_KEYS
# sshd's own sockets (socket activation: systemd, pid 1, holds them) are not "taken"
SSHD_PROCESSES = ("sshd", "ssh.service", "ssh.socket", "sshd.service", "sshd.socket", "init.scope")


def _mapping_keys(regex: str, what: str, bad: tuple[Any, ...]) -> c.Check:
    compiled = re.compile(regex)

    def test(value: Any) -> str | None:
        if not isinstance(value, Mapping):
            return "must be a mapping"
        wrong = [k for k in value if not isinstance(k, str) or not compiled.match(k)]
        return f"has keys that are not {what}: {wrong}" if wrong else None

    return c.Check(test, bad=bad)


def _timezone(value: Any) -> str | None:
    ok = isinstance(value, str) and re.match(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$", value)
    return None if ok else "is not a time zone name such as Etc/UTC or Europe/Berlin"


def _shell_timeout(value: Any) -> str | None:
    ok = c.is_int(value) and (value == 0 or 60 <= value <= 86400)
    return None if ok else "must be 0 (no shell timeout) or a whole number of seconds from 60 to 86400"


def _banner(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty text (turn the banner off with base_banner_enabled: false)"
    if len(value) > 2000:
        return f"is {len(value)} characters long; at most 2000 (a banner is read before every login)"
    control = sorted({f"U+{ord(ch):04X}" for ch in value if c.is_control(ch) and ch not in "\n\t"})
    if control:
        return f"holds control characters ({', '.join(control)}): terminals would act on them; plain text only"
    if "\\" in value:
        return "holds a backslash, which the console's getty reads as an escape in /etc/issue (\\n is the host name)"
    return None


def _audit_rule(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "is not an audit rule line"
    if value.strip().startswith("-e"):
        return "sets the audit mode (-e), which base_audit_immutable decides"
    if value.strip() == "-D" or value.strip().startswith(("-b", "-f", "-r", "--backlog_wait_time")):
        return "changes auditd's own settings, which the distribution's rules file holds; only -w and -a rules here"
    return audit_rules.rule_error(value)


_B64 = r"[./0-9A-Za-z]"
_CRYPT_HASHES = (
    re.compile(rf"^\$y\${_B64}+\${_B64}{{1,86}}\${_B64}{{43}}$"),               # yescrypt
    re.compile(rf"^\$6\$(rounds=[0-9]{{4,9}}\$)?{_B64}{{1,16}}\${_B64}{{86}}$"),  # SHA-512
    re.compile(rf"^\$5\$(rounds=[0-9]{{4,9}}\$)?{_B64}{{1,16}}\${_B64}{{43}}$"),  # SHA-256
    re.compile(rf"^\$2[by]\$[0-9]{{2}}\${_B64}{{53}}$"),                        # bcrypt
)


def _password_hash(value: Any) -> str | None:
    if value == "":
        return None
    if not isinstance(value, str) or not any(h.match(value) for h in _CRYPT_HASHES):
        return ("is not a crypt hash of yescrypt ($y$), SHA-512 ($6$), SHA-256 ($5$) or bcrypt ($2b$), whole "
                "(mkpasswd -m yescrypt makes one; a password itself never goes here)")
    return None


def _ca_text(value: Any) -> str | None:
    return None if value == "" else c.pem_certificate_reason(value)


def _forwarding_port(value: Any) -> str | None:
    ok = c.is_int(value) and 0 <= value <= 65535
    return None if ok else "must be 0 (the mode's usual port) or a port from 1 to 65535"


def _forwarding_host(value: Any) -> str | None:
    if value == "" or (isinstance(value, str) and c.address(value)):
        return None
    # all digits and dots is an IPv4 address or nothing (10.0.0.300 is not a host name)
    if isinstance(value, str) and re.match(c.HOST_NAME_RE, value) and not re.match(r"^[0-9.]+$", value):
        return None
    return "is not a host name (lower case) or an IP address (no scheme, no port: base_log_forwarding_port)"


_FORWARDING_HOST = c.Check(_forwarding_host, bad=("logs example.org", "-logs", "https://logs.example.org",
                                                  "logs.example.org:514", "10.0.0.300"))


# Every option whose value has a format or range; options with `choices` or of type bool are
# fully checked by the argument spec. tests/integration/test_spec_bad_inputs.py requires every
# other option to be listed here (or in FREE_FORM with a reason).
OPTIONS: dict[str, c.Check] = {
    "base_deploy_user": c.USER_NAME,
    "base_deploy_user_authorized_keys": _KEY_CHECK,
    "base_deploy_user_shell": c.SHELL,
    "base_deploy_user_password_hash": c.Check(_password_hash, secret=True, bad=(
        "correct horse battery staple", "$1$abcdefgh$0123456789abcdefghijkl", "$6$salt$short",
        "$6$saltsalt$" + "a" * 85, "$y$j9T$salt$" + "a" * 42)),
    "base_deploy_user_groups": c.GROUP_NAMES,
    "base_users_absent": c.USER_NAMES,
    "base_users_locked": c.USER_NAMES,
    "base_ssh_port": c.PORT,
    "base_ssh_listen_addresses": c.ADDRESSES,
    "base_ssh_access_group": c.pattern(c.USER_NAME_RE, "a group name", bad=("", "SSH Users")),
    "base_ssh_allow_groups": c.GROUP_NAMES,
    "base_ssh_allow_users": c.USER_NAMES,
    "base_ssh_max_auth_tries": c.int_range(1, 6),
    "base_ssh_max_sessions": c.int_range(1, 64),
    "base_ssh_login_grace_time": c.int_range(10, 600, "seconds"),
    # 0 in either turns the idle timeout off (OpenSSH: count 0 never closes the session)
    "base_ssh_client_alive_interval": c.int_range(1, 3600, "seconds"),
    "base_ssh_client_alive_count_max": c.int_range(1, 10),
    "base_ssh_rsa_host_key_bits": c.int_range(3072, 16384),
    "base_ssh_moduli_min_bits": c.int_range(3072, 8192),
    "base_ssh_kex_algorithms": c.nonempty(c.SSH_ALGORITHMS),
    "base_ssh_ciphers": c.nonempty(c.SSH_ALGORITHMS),
    "base_ssh_macs": c.nonempty(c.SSH_ALGORITHMS),
    "base_ssh_host_key_algorithms": c.nonempty(c.SSH_ALGORITHMS),
    "base_ssh_extra_config": _mapping_keys(r"^[A-Za-z][A-Za-z0-9]*$", "sshd keywords",
                                           bad=({"Port 22\nPermitRootLogin": "yes"}, {"": "x"})),
    "base_sysctl_extra": _mapping_keys(r"^[a-z0-9_*-]+([./][a-z0-9_*-]+)+$", "sysctl names like net.ipv4.ip_forward",
                                       bad=({"kernel": 1}, {"net.ipv4.ip forward": 1})),
    "base_modprobe_blacklist": c.pattern(r"^[A-Za-z0-9_-]+$", "a kernel module name", bad=(["usb storage"], ["a;b"]),
                                         each=True),
    "base_umask": c.pattern(r"^0?[0-7]{3}$", "three octal digits such as 027", bad=("", "999", "27", "rwx")),
    "base_login_defs": _mapping_keys(r"^[A-Z][A-Z0-9_]*$", "login.defs keys like PASS_WARN_AGE",
                                     bad=({"pass max days": 1}, {"UMASK\nX": "1"})),
    "base_password_max_days": c.int_range(1, 99999, "days"),
    "base_cloud_init_timeout": c.int_range(0, 86400, "seconds"),
    "base_password_min_length": c.int_range(8, 64, "characters"),
    "base_password_remember": c.int_range(1, 24),
    "base_password_hash_rounds": c.int_range(5000, 999999),
    "base_pam_faillock_deny": c.int_range(3, 20),
    "base_pam_faillock_unlock_seconds": c.int_range(60, 86400, "seconds"),
    "base_shell_timeout": c.Check(_shell_timeout, bad=(30, 86401, -1)),
    "base_audit_rules_extra": c.Check(_audit_rule, each=True, bad=(["-w /etc/hosts -p wz -k hosts"], ["-a always,exit -F bogus=1"],
                                                                   ["-e 0"], ["-w etc/hosts"], ["-k key-without-rule"])),
    "base_audit_max_log_file_mb": c.int_range(1, 1024, "MB"),
    "base_aide_paths": c.nonempty(c.ABSOLUTE_PATHS_PLAIN),
    "base_aide_exclude": c.ABSOLUTE_PATHS_PLAIN,
    "base_aide_calendar": c.CALENDAR,
    "base_audit_num_logs": c.int_range(2, 99),
    "base_banner_text": c.Check(_banner, bad=("", "Authorised only\x1b[2J\n", "Host \\n\n", "x" * 2001)),
    "base_sudo_logfile": c.ABSOLUTE_PATH,
    "base_sudo_umask": c.pattern(r"^0[0-7]{3}$", "four octal digits such as 0022 or 0027", bad=("", "022", "0999", "u=rwx")),
    "base_packages": c.PACKAGE_NAMES,
    "base_packages_extra": c.PACKAGE_NAMES,
    "base_packages_absent": c.PACKAGE_NAMES,
    "base_apt_cache_valid_time": c.int_range(0, 604800, "seconds"),
    "base_unattended_upgrades_extra_origins": c.SAFE_TEXTS,
    "base_unattended_upgrades_blacklist": c.SAFE_TEXTS,
    "base_unattended_upgrades_reboot_time": c.pattern(r"^([01][0-9]|2[0-3]):[0-5][0-9]$", "HH:MM (24 hours)",
                                                      bad=("25:00", "3:30pm", "")),
    "base_unattended_upgrades_mail": c.EMAIL,
    "base_root_mail_alias": c.EMAIL,
    "base_timezone": c.Check(_timezone, bad=("../../etc/passwd", "")),  # unknown zones: host check below
    "base_hostname": c.pattern(c.HOST_NAME_RE, "a lower-case RFC 1123 host name", bad=("Web_1", "-web", "a..b"),
                               empty_ok=True),
    "base_ntp_servers": c.HOST_NAMES,
    "base_ntp_fallback_servers": c.HOST_NAMES,
    "base_journald_system_max_use": c.pattern(r"^[0-9]+[KMGT]?$", "a size such as 500M or 2G",
                                              bad=("", "lots", "500 MB")),
    "base_journald_max_retention": c.pattern(
        r"^[0-9]+ ?(s|sec|min|h|hour|d|day|w|week|month|y|year)s?$", "a time span such as 2week or 1month",
        bad=("", "forever", "1 fortnight")),
    "base_log_forwarding_host": _FORWARDING_HOST,
    "base_log_forwarding_port": c.Check(_forwarding_port, bad=(-1, 65536, 70000)),
    "base_log_forwarding_ca": c.Check(_ca_text, secret=True, bad=(
        "not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")),
    "base_log_forwarding_queue_max_mb": c.int_range(1, 65536, "MiB"),
    "base_swap_file_size_mb": c.int_range(0, 65536, "MB"),
    "base_swap_file_path": c.ABSOLUTE_PATH,
    "base_swappiness": c.int_range(0, 100),
    "base_apt_security_uri": c.pattern(r"^(https?|file)://[^\s\"']+$", "an apt repository URI like "
                                       "http://mirror.example/debian-security", bad=("mirror/debian-security", "ftp x"),
                                       empty_ok=True),
}

# Options that are checked by their type alone, and why that is enough.
FREE_FORM: dict[str, str] = {
    "base_users": "a list of accounts; every field is checked below (names, keys, shells) by base_errors",
}

# Values a spec-driven test feeds to base_users, beside the spec's own type errors.
SUBOPTION_BAD = {
    "base_users": ([{"name": "Bad User"}], [{"name": "ops", "authorized_keys": ["nope"]}],
                   [{"name": "ops", "shell": "bash"}], [{"name": "ops"}, {"name": "ops"}]),
}


def _accounts(v: Mapping[str, Any]) -> list[dict[str, Any]]:
    deploy = {"name": v.get("base_deploy_user", "deploy"), "authorized_keys": v.get("base_deploy_user_authorized_keys") or [],
              "ssh": True}
    users = [u for u in v.get("base_users") or [] if isinstance(u, Mapping)]
    return [deploy] + [{"ssh": True, "authorized_keys": [], **u} for u in users]


def _user_errors(v: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    users = v.get("base_users") or []
    if not c.is_list(users):
        return []  # the argument spec refuses it
    for index, user in enumerate(users):
        where = f"base_users[{index}]"
        if not isinstance(user, Mapping):
            errors.append(f"{where}: must be a mapping with at least a name")
            continue
        errors += c.USER_NAME.errors(f"{where}.name", user.get("name"))
        if "authorized_keys" in user:
            errors += _KEY_CHECK.errors(f"{where}.authorized_keys", user["authorized_keys"])
        if "shell" in user:
            errors += c.SHELL.errors(f"{where}.shell", user["shell"])
        if "groups" in user:
            errors += c.GROUP_NAMES.errors(f"{where}.groups", user["groups"])
    names = [a["name"] for a in _accounts(v)]
    removed = list(v.get("base_users_absent") or []) + list(v.get("base_users_locked") or [])
    if "root" in removed:
        errors.append("base_users_absent / base_users_locked: may not name root")
    both = sorted(set(names) & set(removed))
    if both:
        errors.append(f"base_users_absent / base_users_locked: name accounts the role also creates: {both}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        errors.append(f"base_users: repeats a name (or names the deploy user): {repeated}")
    return errors


def _lockout_errors(v: Mapping[str, Any], host: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    root_closed = v.get("base_ssh_permit_root_login", "no") != "yes"
    closing = root_closed or not v.get("base_ssh_password_authentication", False)
    deploy = v.get("base_deploy_user", "deploy")
    if deploy == "root":
        errors.append("base_deploy_user: may not be root; root login is closed by this role (base_ssh_permit_root_login), "
                      "so a deploy user named root would leave no account able to log in. Name a separate user "
                      "such as deploy")
    if closing and not v.get("base_deploy_user_authorized_keys"):
        errors.append(
            "base_deploy_user_authorized_keys: is empty while root or password login would be disabled "
            f"(base_ssh_permit_root_login={v.get('base_ssh_permit_root_login', 'no')}, base_ssh_password_authentication="
            f"{v.get('base_ssh_password_authentication', False)}): that would lock you out. Add the deploy user's "
            "public key first.")
    allow_users = list(v.get("base_ssh_allow_users") or [])
    key_users = [a["name"] for a in _accounts(v)
                 if a.get("ssh", True) and a.get("authorized_keys") and a["name"] != "root"]
    # AllowUsers always holds the deploy user (see templates/sshd_config.j2).
    allowed = [n for n in key_users if not allow_users or n in allow_users + [deploy]]
    if closing and deploy != "root" and v.get("base_deploy_user_authorized_keys") and not allowed:
        errors.append("base_ssh_allow_users: no account with a key would be allowed to log in; add the deploy user")
    user = str(host.get("connection_user") or "")
    ssh_users = [a["name"] for a in _accounts(v) if a.get("ssh", True)]
    if user not in ("", "root") and user not in ssh_users:
        errors.append(f"base_deploy_user / base_users: this play connects as '{user}', who would not be allowed to "
                      "log in over SSH afterwards (not base_deploy_user and not in base_users with ssh: true)")
    ports = [str(p) for p in host.get("sshd_ports") or []]
    port = v.get("base_ssh_port", 22)
    if host.get("over_ssh") and ports and str(port) not in ports and str(host.get("ansible_port", 22)) not in ports:
        errors.append(
            f"base_ssh_port: would move sshd from port {','.join(ports)} to {port}, but this play reaches the host "
            f"through port {host.get('ansible_port', 22)} (a port forward?), so the role cannot check the new port "
            "before closing the old one. Connect directly, or change the port by other means.")
    return errors


def base_security_source(entries: Any, distribution: str, codename: str, uri: str = "") -> dict[str, Any]:
    """Whether apt's sources lack the security suite (<codename>-security), and the deb822 entry
    that adds it: ``uri`` when given, else derived from the main suite's URI (Debian's archive
    layout keeps the security suite beside the main one, in ``debian-security``; Ubuntu serves it
    from the main URI). No host name is invented: it is the one the host already uses."""
    suite = f"{codename}-security"
    entries = [e for e in entries or [] if isinstance(e, Mapping)]
    if any(suite in (e.get("suites") or []) for e in entries):
        return {"missing": False, "suite": suite, "uri": "", "components": []}
    main = next((e for e in entries if codename in (e.get("suites") or []) and e.get("uris")), None)
    chosen = uri
    if not chosen and main:
        base = str(main["uris"][0]).rstrip("/")
        chosen = base if distribution == "Ubuntu" else base.rsplit("/", 1)[0] + "/debian-security"
    components = list(main.get("components") or ["main"]) if main else ["main"]
    return {"missing": True, "suite": suite, "uri": chosen, "components": components,
            "keyring": f"/usr/share/keyrings/{distribution.lower()}-archive-keyring.gpg"}


def base_audit_rules(architecture: str, privileged: Any, extra: Any = None) -> str:
    """The base role's audit rules for this host (plugins/plugin_utils/audit_rules.py)."""
    return audit_rules.base_rules(str(architecture), [str(p) for p in privileged or []], list(extra or []))


def base_accounts_to_change(accounts: Any, users: Any, ssh_group: str, max_days: Any) -> list[dict[str, Any]]:
    """The accounts of the base role that ansible.builtin.user would change: missing, another shell,
    a group they should be in (``append``: groups are only added), or another maximum password age,
    as host_probe read them (``users``)."""
    users = users if isinstance(users, Mapping) else {}
    out = []
    for account in accounts or []:
        found = users.get(account.get("name")) or {}
        wanted = set(account.get("groups") or []) | ({ssh_group} if account.get("ssh", True) else set())
        if (not found.get("exists") or found.get("shell") != account.get("shell", "/bin/bash")
                or not wanted <= set(found.get("groups") or []) or found.get("max_days") != int(max_days)):
            out.append(account)
    return out


def _sudo_password_errors(v: Mapping[str, Any], host: Mapping[str, Any]) -> list[str]:
    """sudo with a password: the deploy user must have one, the host must verify its hash, and the
    play's become password (when it has one) must be that password."""
    if not v.get("base_deploy_user_sudo", True) or v.get("base_deploy_user_sudo_nopasswd", True):
        return []
    if not v.get("base_deploy_user_password_hash"):
        return ["base_deploy_user_password_hash: is empty while base_deploy_user_sudo_nopasswd is false: sudo would ask "
                "the deploy user for a password it does not have (a key-only account), and no run as the deploy user "
                "could use sudo again. Give the password's hash (mkpasswd -m yescrypt, kept in vault) and the same "
                "password as ansible_become_password, or keep base_deploy_user_sudo_nopasswd: true"]
    if _password_hash(v["base_deploy_user_password_hash"]):
        return []  # its form is wrong: OPTIONS says so; what the host's crypt says adds nothing
    check = host.get("password_check") or {}
    errors = []
    if check.get("supported") == "no":
        errors.append("base_deploy_user_password_hash: this host's crypt cannot verify a hash of this kind, so sudo would "
                      "refuse every password; make it with mkpasswd -m yescrypt (or sha-512) on the same distribution")
    if check.get("matches") == "no":
        errors.append("base_deploy_user_password_hash: ansible_become_password is not the password of this hash: the next "
                      "run as the deploy user could not use sudo. Give the hash of that password (or that password)")
    return errors


def _forwarding_errors(v: Mapping[str, Any]) -> list[str]:
    mode = v.get("base_log_forwarding", "none")
    if mode == "none":
        return []
    errors: list[str] = []
    target = v.get("base_log_forwarding_host", "")
    if not target:
        errors.append(f"base_log_forwarding_host: is empty, and base_log_forwarding is {mode}: name the collector "
                      "(host name or address)")
    tls = v.get("base_log_forwarding_tls", False)
    if tls and not v.get("base_log_forwarding_ca"):
        errors.append("base_log_forwarding_ca: is empty, and base_log_forwarding_tls is true: give the PEM certificate "
                      "of the CA that signed the collector's certificate (without it the collector cannot be trusted)")
    if mode == "rsyslog" and tls and v.get("base_log_forwarding_protocol", "tcp") == "udp":
        errors.append("base_log_forwarding_protocol: udp cannot carry TLS; use tcp with base_log_forwarding_tls")
    if mode == "journal" and v.get("base_log_forwarding_protocol", "tcp") == "udp":
        errors.append("base_log_forwarding_protocol: udp is rsyslog's; systemd-journal-upload speaks HTTP over TCP")
    return errors


def _security_errors(v: Mapping[str, Any], host: Mapping[str, Any]) -> list[str]:
    source = host.get("security_source") or {}
    if not source.get("missing") or not v.get("base_unattended_upgrades_enabled", True):
        return []
    if not v.get("base_apt_security_source", True):
        return [f"base_apt_security_source: is false, and apt's sources lack {source.get('suite')}: unattended-upgrades "
                "would run and never install a security update. Add the security suite to the sources, or set "
                "base_apt_security_source: true to let the role add it"]
    if not source.get("uri"):
        return [f"base_apt_security_uri: apt's sources lack {source.get('suite')} and the role cannot tell where it is "
                "(no main suite to derive it from); set base_apt_security_uri"]
    return []


def base_errors(variables: Mapping[str, Any], host: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem with the base role's input, each message starting with the variable at fault."""
    v = c.typed(variables, "base")
    host = host or {}
    errors = c.os_errors(host, "base") if host.get("distribution") else []
    errors += c.check_options(v, OPTIONS, host)
    if "listening" in host or host.get("ports"):
        # moving sshd to a port another daemon holds is a lockout
        errors += c.port_errors({"base_ssh_port": v.get("base_ssh_port", 22)}, host.get("listening"), SSHD_PROCESSES,
                                host.get("ports"))
    errors += _user_errors(v)
    errors += _lockout_errors(v, host)
    errors += _security_errors(v, host)
    errors += _forwarding_errors(v)
    errors += _sudo_password_errors(v, host)
    interval, count = v.get("base_ssh_client_alive_interval", 150), v.get("base_ssh_client_alive_count_max", 2)
    if c.is_int(interval) and c.is_int(count) and interval > 0 and count > 0 and interval * count > 3600:
        errors.append(f"base_ssh_client_alive_interval / base_ssh_client_alive_count_max: {interval} x {count} = "
                      f"{interval * count} s before sshd closes an idle session; at most 3600 s (one hour)")
    tz = v.get("base_timezone")
    if "timezone_exists" in host and not host["timezone_exists"] and not _timezone(tz):
        errors.append(f"base_timezone: {tz!r} is not a time zone known to this host (e.g. Etc/UTC, Europe/Berlin)")
    return errors


class FilterModule:
    """anvil.hetzner base filters."""

    def filters(self) -> dict[str, Any]:
        return {"base_errors": base_errors, "base_security_source": base_security_source,
                "base_accounts_to_change": base_accounts_to_change, "base_audit_rules": base_audit_rules}
