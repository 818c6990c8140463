"""Behaviour of a host hardened by anvil.hetzner.base, checked from inside the host.

The host runs its own SSH client against 127.0.0.1, so these are real logins through the real sshd.
prepare.yml proved, before hardening, that the same password and root logins succeeded, so every
refusal below is caused by the role.
"""

from __future__ import annotations

import os

import pytest
import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")

PORT = 2222
SSH = (
    "ssh -p {port} -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
    "-o ConnectTimeout=10 {opts} {user}@127.0.0.1 {cmd}"
)


def ssh(host, user, opts="-i /root/deploy_key", cmd="id -un", port=PORT):
    return host.run(SSH.format(port=port, opts=opts, user=user, cmd=cmd))


def sshd_effective(host) -> dict[str, str]:
    out = host.check_output("sshd -T -C user=deploy,host=localhost,addr=127.0.0.1")
    values: dict[str, str] = {}
    for line in out.splitlines():
        key, _unused, value = line.partition(" ")
        values.setdefault(key, value)
    return values


SUDO_PASSWORD = "anvil-Sudo-test-2026"  # vars.yml: base-debian13's deploy user has sudo with it


def test_deploy_user_logs_in_with_its_key_and_has_sudo(host):
    if not host.system_info.release.startswith("13"):
        result = ssh(host, "deploy", cmd="sudo -n id -un")
        assert result.rc == 0, result.stderr
        assert result.stdout.strip() == "root"
        return
    # sudo with a password: none asks in vain, the right one is root, a wrong one is refused
    result = ssh(host, "deploy", cmd="sudo -n id -un")
    assert result.rc != 0 and "a password is required" in result.stderr, result.stdout + result.stderr
    result = ssh(host, "deploy", cmd=f"'echo {SUDO_PASSWORD} | sudo -S -k -p \"\" id -un'")
    assert result.rc == 0 and result.stdout.strip() == "root", result.stderr
    result = ssh(host, "deploy", cmd="'echo not-the-password | sudo -S -k -p \"\" id -un'")
    assert result.rc != 0 and result.stdout.strip() != "root"
    sudoers = host.file("/etc/sudoers.d/50-anvil-deploy").content_string
    assert "NOPASSWD" not in sudoers and "deploy ALL=(ALL:ALL) ALL" in sudoers
    # the hash is the account's password, never usable for an SSH login (password login stays off)
    assert host.check_output("getent shadow deploy").split(":")[1].startswith("$y$j9T$Vq3Z")
    result = ssh(host, "deploy", opts="-o PubkeyAuthentication=no -o PreferredAuthentications=password")
    assert result.rc == 255


def test_root_login_is_refused_even_with_a_valid_key(host):
    result = ssh(host, "root")
    assert result.rc == 255
    assert "Permission denied" in result.stderr


def test_password_login_is_refused(host):
    result = host.run(
        "sshpass -p Secret-Pass-123 " + SSH.format(
            port=PORT,
            opts="-o BatchMode=no -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive",
            user="pwuser",
            cmd="true",
        )
    )
    assert result.rc != 0
    assert "Permission denied (publickey)" in result.stderr


def test_old_port_is_closed(host):
    result = ssh(host, "deploy", port=22)
    assert result.rc == 255
    assert "refused" in result.stderr


def test_effective_sshd_config_is_hardened_despite_cloud_init_dropin(host):
    conf = sshd_effective(host)
    assert conf["port"] == str(PORT)
    assert conf["permitrootlogin"] == "no"
    assert conf["passwordauthentication"] == "no"
    assert conf["kbdinteractiveauthentication"] == "no"
    assert conf["permitemptypasswords"] == "no"
    assert conf["authenticationmethods"] == "publickey"
    assert int(conf["maxauthtries"]) <= 3
    assert conf["loglevel"] == "VERBOSE"
    assert conf["x11forwarding"] == "no"
    assert conf["allowtcpforwarding"] == "no"
    assert conf["allowagentforwarding"] == "no"
    # an idle or dead session closes after 150 s x 2 unanswered probes (issue 23: <= 5 minutes)
    assert conf["clientaliveinterval"] == "150"
    assert conf["clientalivecountmax"] == "2"
    assert conf["allowgroups"] == "ssh-users"
    weak = {"3des-cbc", "aes128-cbc", "aes256-cbc", "hmac-sha1", "hmac-md5", "diffie-hellman-group1-sha1",
            "diffie-hellman-group14-sha1", "ecdh-sha2-nistp256", "ssh-rsa", "ecdsa-sha2-nistp256"}
    for key in ("ciphers", "macs", "kexalgorithms", "hostkeyalgorithms"):
        offered = set(conf[key].split(","))
        assert offered and not offered & weak, (key, offered & weak)
    assert "chacha20-poly1305@openssh.com" in conf["ciphers"]


def test_cloud_init_dropin_is_disabled_but_kept(host):
    assert not host.file("/etc/ssh/sshd_config.d/50-cloud-init.conf").exists
    kept = host.file("/etc/ssh/sshd_config.d/50-cloud-init.conf.disabled-by-anvil")
    assert kept.exists and "PasswordAuthentication yes" in kept.content_string


def test_hardened_settings_stand_in_the_main_file_for_scanners(host):
    content = host.file("/etc/ssh/sshd_config").content_string
    for line in ("PermitRootLogin no", "PasswordAuthentication no", "MaxAuthTries 3", "LogLevel VERBOSE"):
        assert f"\n{line}\n" in content
    assert host.file("/etc/ssh/sshd_config").mode == 0o600


def test_only_strong_host_keys_remain(host):
    assert not host.file("/etc/ssh/ssh_host_ecdsa_key").exists
    assert not host.file("/etc/ssh/ssh_host_ecdsa_key.pub").exists
    assert host.file("/etc/ssh/ssh_host_ed25519_key").exists
    bits = int(host.check_output("ssh-keygen -lf /etc/ssh/ssh_host_rsa_key.pub").split()[0])
    assert bits >= 3072
    scan = host.run(f"ssh-keyscan -p {PORT} 127.0.0.1")
    assert "ssh-ed25519" in scan.stdout and "ecdsa" not in scan.stdout


def test_moduli_are_at_least_3072_bits(host):
    sizes = [int(line.split()[4]) + 1 for line in host.file("/etc/ssh/moduli").content_string.splitlines()
             if line and not line.startswith("#")]
    assert sizes and min(sizes) >= 3072


def sudo(host, command: str) -> str:
    """The deploy user's sudo of `command` over SSH: with the password on base-debian13 (sudo with a
    password there), without one elsewhere."""
    if host.system_info.release.startswith("13"):
        return f"'echo {SUDO_PASSWORD} | sudo -S -p \"\" {command}'"
    return f"sudo -n {command}"


def test_sudoers_dropin_is_valid_and_restricted(host):
    f = host.file("/etc/sudoers.d/50-anvil-deploy")
    assert f.mode == 0o440
    rule = "deploy ALL=(ALL:ALL) ALL" if host.system_info.release.startswith("13") else "deploy ALL=(ALL:ALL) NOPASSWD: ALL"
    assert rule in f.content_string
    assert host.run("visudo -c").rc == 0


def test_locked_account_cannot_log_in(host):
    assert host.user("olduser").shell == "/usr/sbin/nologin"
    assert host.check_output("passwd -S olduser").split()[1] == "L"


def test_sysctl_file_content(host):
    content = host.file("/etc/sysctl.d/90-anvil-hardening.conf").content_string
    for line in ("net.ipv4.ip_forward = 0", "net.ipv4.tcp_syncookies = 1", "kernel.kptr_restrict = 2",
                 "net.ipv4.conf.all.accept_redirects = 0", "fs.suid_dumpable = 0", "vm.swappiness = 10"):
        assert line in content


# issue 23: the keys an ANSSI BP-28 scan found missing, persisted with their hardened values
HARDENED_KEYS = {
    "kernel.panic_on_oops": "1", "kernel.perf_event_paranoid": "3", "kernel.pid_max": "65536",
    "vm.mmap_min_addr": "65536", "kernel.kexec_load_disabled": "1",
    "net.ipv4.conf.all.accept_local": "0", "net.ipv4.conf.all.route_localnet": "0",
    "net.ipv4.conf.all.shared_media": "0", "net.ipv4.conf.default.shared_media": "0",
    "net.ipv4.conf.all.arp_filter": "1", "net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2",
    "net.ipv6.conf.all.accept_ra_defrtr": "0", "net.ipv6.conf.all.accept_ra_pinfo": "0",
    "net.ipv6.conf.all.accept_ra_rtr_pref": "0", "net.ipv6.conf.all.autoconf": "0",
    "net.ipv6.conf.all.router_solicitations": "0", "net.ipv6.conf.default.max_addresses": "1",
    "net.ipv4.tcp_timestamps": "1",
}


def test_sysctl_file_persists_the_hardened_keys_and_is_valid(host):
    """Every key is written once, with its hardened value (a container cannot set kernel
    parameters, so the file is what the test can see)."""
    entries = {}
    for line in host.file("/etc/sysctl.d/90-anvil-hardening.conf").content_string.splitlines():
        if line and not line.startswith("#"):
            key, _sep, value = line.partition(" = ")
            assert key not in entries, key
            entries[key] = value
    for key, value in HARDENED_KEYS.items():
        assert entries.get(key) == value, key


def test_every_key_of_the_file_is_the_one_the_next_boot_applies(host):
    """systemd-sysctl applies every sysctl.d file in the order of its name, the last value of a key
    winning. Debian 12's /usr/lib/sysctl.d/99-protect-links.conf comes after the role's 90- file and
    set fs.protected_fifos back to 1 (the ANSSI scan found it): the role masks such a file, and no
    file read after the role's may change any of its keys."""
    mine = {}
    for line in host.file("/etc/sysctl.d/90-anvil-hardening.conf").content_string.splitlines():
        if line and not line.startswith("#"):
            key, _sep, value = line.partition(" = ")
            mine[key] = value
    effective = {}
    for line in host.check_output("/lib/systemd/systemd-sysctl --cat-config").splitlines():
        if line.strip() and not line.lstrip().startswith(("#", ";")) and "=" in line:
            key, _sep, value = line.partition("=")
            effective[key.strip().lstrip("-")] = value.strip()
    assert {k: effective.get(k) for k in mine if effective.get(k) != mine[k]} == {}
    if host.file("/usr/lib/sysctl.d/99-protect-links.conf").exists:
        masked = host.file("/etc/sysctl.d/99-protect-links.conf")
        assert masked.is_symlink and masked.linked_to == "/dev/null"


def test_modules_and_core_dumps_are_off(host):
    blacklist = host.file("/etc/modprobe.d/90-anvil-blacklist.conf").content_string
    for module in ("cramfs", "usb-storage", "firewire-core"):
        assert f"install {module} /bin/false" in blacklist and f"blacklist {module}" in blacklist
    assert "hard    core    0" in host.file("/etc/security/limits.d/90-anvil-coredump.conf").content_string
    assert host.run("su - deploy -c 'ulimit -Hc'").stdout.strip() == "0"


def test_login_defs_and_file_permissions(host):
    defs = host.file("/etc/login.defs").content_string
    assert "UMASK\t027" in defs and "PASS_MAX_DAYS\t99999" in defs
    assert host.file("/etc/crontab").mode == 0o600
    assert host.file("/etc/shadow").mode == 0o640
    # a key-only account never expires
    assert "never" in host.check_output("chage -l deploy | grep 'Password expires'")


def test_unattended_upgrades_dry_run_succeeds(host):
    result = host.run("unattended-upgrade --dry-run --debug")
    assert result.rc == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "Allowed origins are:" in result.stdout + result.stderr
    assert "label=Debian-Security" in result.stdout + result.stderr
    assert host.service("unattended-upgrades").is_enabled


def test_security_suite_is_in_apt_sources_and_apt_uses_it(host):
    """The debootstrap image lacks <codename>-security; the role added it, and apt has its index,
    so unattended-upgrades has security updates to install."""
    codename = host.system_info.codename
    source = host.file("/etc/apt/sources.list.d/anvil-security.sources")
    assert source.exists and f"Suites: {codename}-security" in source.content_string
    policy = host.check_output("apt-cache policy")
    assert f"{codename}-security" in policy and "l=Debian-Security" in policy


def test_risky_packages_absent_and_baseline_present(host):
    assert not host.package("telnet").is_installed
    for pkg in ("unattended-upgrades", "systemd-timesyncd", "sudo", "openssh-server"):
        assert host.package(pkg).is_installed


def test_time_zone_journald_and_swap_file(host):
    assert host.file("/etc/localtime").linked_to.endswith("Europe/Berlin")
    assert "SystemMaxUse=500M" in host.file("/etc/systemd/journald.conf.d/90-anvil.conf").content_string
    swap = host.file("/swapfile")
    assert swap.mode == 0o600 and swap.size == 32 * 1024 * 1024
    assert host.check_output("tail -c +4087 /swapfile | head -c 10") == "SWAPSPACE2"
    assert "/swapfile none swap sw" in host.file("/etc/fstab").content_string


@pytest.mark.parametrize("service", ["ssh", "cron"])
def test_services_running(host, service):
    assert host.service(service).is_running
    assert host.service(service).is_enabled


# --- issue 23: sessions, logins and sudo ----------------------------------------------------------
BANNER = "Authorised access only."


def test_sshd_shows_the_banner_before_login(host):
    """The banner arrives before authentication: even the refused root login sees it."""
    result = ssh(host, "root")
    assert result.rc == 255
    assert BANNER in result.stderr
    for path in ("/etc/issue", "/etc/issue.net"):
        assert host.file(path).content_string.startswith(BANNER)
    assert sshd_effective(host)["banner"] == "/etc/issue.net"


def test_sudo_defaults_are_in_force_for_the_deploy_user(host):
    listing = ssh(host, "deploy", cmd=sudo(host, "-l")).stdout
    for entry in ("use_pty", "logfile=/var/log/sudo.log", "umask=0022", "ignore_dot", "!rootpw", "!runaspw",
                  "!targetpw", "!visiblepw"):
        assert entry in listing, entry
    assert host.file("/etc/sudoers.d/00-anvil-defaults").mode == 0o440


def test_sudo_logs_every_command_to_its_own_rotated_file(host):
    marker = "anvil-sudo-log-check"
    result = ssh(host, "deploy", cmd=sudo(host, f"/bin/echo {marker}"))
    assert result.rc == 0, result.stderr
    log = host.file("/var/log/sudo.log")
    # sudo wraps long log lines: compare with the white space folded
    assert f"COMMAND=/bin/echo {marker}" in " ".join(log.content_string.split())
    assert log.mode == 0o600
    assert "/var/log/sudo.log {" in host.file("/etc/logrotate.d/anvil-sudo").content_string
    assert host.run("logrotate --debug /etc/logrotate.d/anvil-sudo").rc == 0


def test_interactive_shells_time_out_and_scripts_do_not(host):
    interactive = ssh(host, "deploy", cmd="\"bash -lic 'echo TMOUT=\\$TMOUT' 2>/dev/null\"")
    assert "TMOUT=600" in interactive.stdout, interactive.stdout + interactive.stderr
    script = ssh(host, "deploy", cmd="\"bash -lc 'echo TMOUT=\\${TMOUT:-unset}'\"")
    assert "TMOUT=unset" in script.stdout
    # read-only: a user cannot switch it off
    assert ssh(host, "deploy", cmd="\"bash -lic 'TMOUT=0' 2>&1\"").stdout.count("readonly") == 1


def test_each_login_gets_its_own_temporary_directory(host):
    uid = host.user("deploy").uid
    result = ssh(host, "deploy", cmd="'echo $TMPDIR'")
    assert result.stdout.strip() == f"/tmp/user/{uid}"
    assert host.file(f"/tmp/user/{uid}").mode == 0o700


def test_root_may_log_in_on_no_console(host):
    securetty = host.file("/etc/securetty")
    assert securetty.exists and securetty.size == 0


def test_homes_and_init_files_are_private(host):
    for user in ("deploy", "pwuser"):
        home = host.user(user).home
        assert host.file(home).mode == 0o700, user
        for name in (".bashrc", ".profile"):
            init = host.file(f"{home}/{name}")
            assert init.exists and init.mode == 0o600, (user, name)


def test_needrestart_restarts_services_automatically(host):
    """needrestart's effective configuration (its main file, then conf.d, as needrestart reads
    them): automatic restarts, never of Docker's engine, no kernel prompt."""
    script = ("our %nrconf; do $_ for ('/etc/needrestart/needrestart.conf', sort glob('/etc/needrestart/conf.d/*.conf'));"
              " print join(' ', $nrconf{restart}, $nrconf{kernelhints},"
              " (grep { 'docker' =~ $_ && !$nrconf{override_rc}->{$_} } keys %{$nrconf{override_rc}}) ? 'docker-kept' : 'docker-restarted')")
    assert host.check_output("perl -e %s", script).split() == ["a", "-1", "docker-kept"]
    assert host.file("/etc/apt/apt.conf.d/99needrestart").exists
    # the role's own file keeps the engine and containerd, whatever the distribution's defaults hold
    own = ("our %nrconf; do '/etc/needrestart/conf.d/90-anvil.conf';"
           " print join(' ', map { my $s = $_; (grep { $s =~ $_ && !$nrconf{override_rc}->{$_} }"
           " keys %{$nrconf{override_rc}}) ? 'kept' : 'restarted' } qw(docker.service containerd.service))")
    assert host.check_output("perl -e %s", own).split() == ["kept", "kept"]


# --- issue 23: accounts with passwords (PAM) ---------------------------------------------------------
def pam_lines(host, name: str) -> list[str]:
    return [" ".join(line.split()) for line in host.file(f"/etc/pam.d/{name}").content_string.splitlines()
            if line.strip() and not line.startswith("#")]


def test_pam_stacks_hold_faillock_pwquality_and_pwhistory_in_order(host):
    auth = pam_lines(host, "common-auth")
    assert auth[0] == "auth requisite pam_faillock.so preauth"
    unix = next(i for i, line in enumerate(auth) if "pam_unix.so" in line)
    assert auth[unix + 1] == "auth [default=die] pam_faillock.so authfail"
    assert "account required pam_faillock.so" in pam_lines(host, "common-account")
    # the module is the first word ending in .so (a control like [success=1 default=ignore] has a space)
    password = [next(word for word in line.split() if word.endswith(".so")) for line in pam_lines(host, "common-password")]
    assert password.index("pam_pwquality.so") < password.index("pam_pwhistory.so") < password.index("pam_unix.so")
    assert "remember=5" in host.file("/etc/pam.d/common-password").content_string


def test_weak_passwords_are_refused_by_pwquality(host):
    script = ("import pwquality\ns = pwquality.PWQSettings(); s.read_config()\n"
              "for pw in ('Short1aA', 'aaaaaaaaaaaaaaaa', 'Vq7#mZ2!kR9$wL4p'):\n"
              "    try:\n        s.check(pw); print('ok')\n    except pwquality.PWQError as e:\n        print('refused')\n")
    assert host.check_output("python3 -c %s", script).split() == ["refused", "refused", "ok"]


def test_wrong_passwords_lock_the_account(host):
    """Five wrong passwords (base_pam_faillock_deny) lock pwuser: the sixth try is refused as locked."""
    host.run("faillock --user pwuser --reset")
    try:
        for _unused in range(5):
            host.run("runuser -u pwuser -- sshpass -p wrong-password su pwuser -c true")
        locked = host.run("runuser -u pwuser -- sshpass -p Secret-Pass-123 su pwuser -c true")
        assert locked.rc != 0
        assert "The account is locked due to 5 failed logins" in locked.stdout + locked.stderr
        assert host.check_output("faillock --user pwuser").count(" su ") >= 5
    finally:
        host.run("faillock --user pwuser --reset")
    conf = host.file("/etc/security/faillock.conf").content_string
    assert "deny = 5" in conf and "unlock_time = 900" in conf


def test_roots_mail_goes_to_the_alias(host):
    assert "root: root-mail@example.org" in host.file("/etc/aliases").content_string.splitlines()


def test_login_defs_hash_rounds(host):
    defs = host.file("/etc/login.defs").content_string
    assert "SHA_CRYPT_MIN_ROUNDS\t65536" in defs and "SHA_CRYPT_MAX_ROUNDS\t65536" in defs


# --- issue 23: file integrity (AIDE) --------------------------------------------------------------
# Before the audit tests: augenrules rewrites /etc/audit/audit.rules, which AIDE watches.
TOOL = "/usr/local/lib/anvil/anvil-aide"
PROM = "/var/lib/prometheus/node-exporter/aide.prom"


def aide_metrics(host) -> dict[str, float]:
    values = {}
    for line in host.file(PROM).content_string.splitlines():
        if line.startswith("anvil_aide_"):
            name, value = line.split()
            values[name] = float(value)
    return values


def test_aide_baseline_holds_the_roles_own_changes_and_a_change_after_it_is_reported(host):
    """Right after the role (converge, then the idempotence run), the check finds nothing: the
    baseline was taken after the role's own changes. A file added after it is reported, by name and
    in the metrics; accepting makes it the baseline."""
    clean = host.run(f"{TOOL} check")
    assert clean.rc == 0, clean.stdout + clean.stderr
    assert "found NO differences" in clean.stdout, clean.stdout[:2000]
    metrics = aide_metrics(host)
    assert metrics["anvil_aide_last_check_success"] == 1
    assert (metrics["anvil_aide_files_added"], metrics["anvil_aide_files_removed"], metrics["anvil_aide_files_changed"]) == (0, 0, 0)
    try:
        host.run("echo planted > /etc/anvil-aide-probe && sed -i '$ a # anvil-aide-test' /etc/login.defs")
        found = host.run(f"{TOOL} check")
        assert found.rc == 0, found.stderr
        assert "/etc/anvil-aide-probe" in found.stdout and "/etc/login.defs" in found.stdout
        metrics = aide_metrics(host)
        assert metrics["anvil_aide_files_added"] == 1 and metrics["anvil_aide_files_changed"] >= 1
        assert 'anvil_textfile_max_age_seconds{textfile="aide"}' in host.file(PROM).content_string
    finally:
        host.run("rm -f /etc/anvil-aide-probe && sed -i '/^# anvil-aide-test$/d' /etc/login.defs")
    accepted = host.run(f"{TOOL} accept")
    assert accepted.rc == 0, accepted.stderr
    assert "found NO differences" in host.run(f"{TOOL} check").stdout
    assert aide_metrics(host)["anvil_aide_files_changed"] == 0


def test_aide_check_runs_on_a_timer_and_fails_without_a_baseline(host):
    assert host.service("anvil-aide-check.timer").is_enabled
    assert host.service("anvil-aide-check.timer").is_running
    assert host.file("/etc/aide/anvil.conf").mode == 0o600
    # aide's own daily check (aide-common) and its mail server were not pulled in
    assert not host.package("aide-common").is_installed
    host.run("mv /var/lib/aide/anvil.db.gz /var/lib/aide/anvil.db.gz.away")
    try:
        missing = host.run(f"{TOOL} check")
        assert missing.rc == 1 and "no baseline" in missing.stderr
        assert aide_metrics(host)["anvil_aide_last_check_success"] == 0
    finally:
        host.run("mv /var/lib/aide/anvil.db.gz.away /var/lib/aide/anvil.db.gz")
    assert host.run(f"{TOOL} check").rc == 0


# --- issue 23: the audit trail -------------------------------------------------------------------
RULES = "/etc/audit/rules.d/50-anvil.rules"
CHECK = "/usr/local/lib/anvil/audit-rules-check"


def test_audit_rules_watch_what_reviewers_check(host):
    rules = host.file(RULES)
    assert rules.mode == 0o640 and rules.user == "root"
    text = rules.content_string
    for watch in ("-w /etc/passwd -p wa -k identity", "-w /etc/shadow -p wa -k identity", "-w /etc/sudoers -p wa -k sudoers",
                  "-w /etc/sudoers.d -p wa -k sudoers", "-w /etc/ssh/sshd_config -p wa -k sshd",
                  "-w /etc/audit -p wa -k audit-config", "-w /usr/sbin/modprobe -p x -k modules"):
        assert watch in text, watch
    for group in ("-k time-change", "-k modules", "-k mounts", "-F exit=-EACCES", "-F exit=-EPERM"):
        assert group in text, group


def test_every_setuid_program_on_the_host_has_a_rule(host):
    """The rules name what a scan of the host finds (a scan of its own, with find)."""
    found = host.check_output("find /usr /opt -xdev -perm /6000 -type f 2>/dev/null | sort").split()
    assert "/usr/bin/sudo" in found and "/usr/bin/passwd" in found
    text = host.file(RULES).content_string
    missing = [path for path in found if f"-F path={path} -F perm=x " not in text]
    assert not missing


def test_audit_rules_pass_the_hosts_check_and_build_into_audit_rules(host):
    result = host.run(f"python3 {CHECK} {RULES}")
    assert result.rc == 0, result.stderr
    # augenrules without --load merges rules.d into audit.rules (a container cannot load them)
    assert host.run("augenrules").rc in (0, 1)
    assert "-w /etc/sudoers -p wa -k sudoers" in host.file("/etc/audit/audit.rules").content_string
    assert not host.service("auditd").is_running  # a container: written and checked, not started


def test_the_hosts_check_refuses_a_syscall_this_host_does_not_have(host):
    """The check holds -S names against ausyscall's table: a typo that auditctl would refuse at boot
    never replaces the rules in place."""
    bad = "/root/anvil-bad.rules"
    host.run(f"printf '%s\\n' '-w /etc/passwd -p wa -k identity' '-a always,exit -F arch=b64 -S openat,no_such_call -k x' > {bad}")
    result = host.run(f"python3 {CHECK} {bad}")
    assert result.rc == 1
    assert "line 2: -S no_such_call: not a syscall of this host's b64 table" in result.stderr


def test_audit_log_is_bounded_and_rotated(host):
    conf = host.file("/etc/audit/auditd.conf").content_string.splitlines()
    for line in ("max_log_file = 8", "num_logs = 5", "max_log_file_action = ROTATE"):
        assert line in conf, line
    assert not host.file("/etc/audit/rules.d/99-anvil-immutable.rules").exists


# -- logs off the host (prepare.yml starts the collectors on loopback) -------------------------------
def _collected(host, text: str, seconds: int = 60) -> bool:
    """Whether the collector received `text` within `seconds` (it appends what it receives)."""
    return host.run(f"timeout {seconds} sh -c 'until grep -aq {text} /root/collector.log 2>/dev/null; "
                    "do sleep 1; done'").rc == 0


def _mark(host, name: str) -> str:
    return f"anvil-forward-{name}-{host.check_output('cat /proc/sys/kernel/random/uuid')[:8]}"


def test_logs_reach_the_collector(host):
    mark = _mark(host, "first")
    host.check_output(f"logger -t anvil-test {mark}")
    assert _collected(host, mark), host.run("tail -c 2000 /root/collector.log; cat /root/collector.log.errors").stdout
    if host.system_info.release.startswith("13"):
        # rsyslog over TLS: the collector only speaks TLS, with the certificate the CA signed
        conf = host.file("/etc/rsyslog.d/90-anvil-forward.conf")
        assert conf.mode == 0o644 and 'StreamDriver="gtls"' in conf.content_string
        assert 'StreamDriverPermittedPeers="collector.anvil.test"' in conf.content_string
        assert host.file("/etc/ssl/anvil/log-forwarding-ca.pem").content_string.startswith("-----BEGIN CERTIFICATE-----")
        assert "ForwardToSyslog=yes" in host.file("/etc/systemd/journald.conf.d/90-anvil.conf").content_string
        assert host.service("rsyslog").is_running and host.service("rsyslog").is_enabled
        assert not host.file("/etc/systemd/journal-upload.conf.d/90-anvil.conf").exists
    else:
        # the journal's export format: the entry's fields, the message among them
        assert host.run(f"grep -aq 'MESSAGE={mark}' /root/collector.log").rc == 0
        upload = host.file("/etc/systemd/journal-upload.conf.d/90-anvil.conf").content_string
        assert "URL=http://127.0.0.1:19532" in upload
        assert host.service("systemd-journal-upload").is_running and host.service("systemd-journal-upload").is_enabled
        assert not host.file("/etc/rsyslog.d/90-anvil-forward.conf").exists


def test_logs_of_a_collector_outage_arrive_when_it_is_back(host):
    """The collector stops; what is logged meanwhile is delivered once it runs again (rsyslog's disk
    queue and retries; systemd-journal-upload's cursor)."""
    unit = host.check_output("systemctl show -p ExecStart --value anvil-test-collector")
    argv = unit.split("argv[]=", 1)[1].split(" ;", 1)[0]
    host.check_output("systemctl stop anvil-test-collector")
    # (a message sent into the connection as it breaks can be lost on TCP; the one after it is queued)
    host.check_output("logger -t anvil-test anvil-forward-while-breaking; sleep 3")
    mark = _mark(host, "outage")
    host.check_output(f"logger -t anvil-test {mark}")
    host.check_output("sleep 5")
    assert host.run(f"grep -aq {mark} /root/collector.log").rc != 0  # nothing listens: not delivered yet
    host.check_output(f"systemctl reset-failed anvil-test-collector 2>/dev/null; "
                      f"systemd-run --unit anvil-test-collector --property Restart=no {argv}")
    assert _collected(host, mark, 120), host.run("tail -c 2000 /root/collector.log").stdout
