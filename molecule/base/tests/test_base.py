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


def test_deploy_user_logs_in_with_its_key_and_has_sudo(host):
    result = ssh(host, "deploy", cmd="sudo -n id -un")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "root"


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
    assert conf["clientaliveinterval"] == "300"
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


def test_sudoers_dropin_is_valid_and_restricted(host):
    f = host.file("/etc/sudoers.d/50-anvil-deploy")
    assert f.mode == 0o440
    assert "deploy ALL=(ALL:ALL) NOPASSWD: ALL" in f.content_string
    assert host.run("visudo -c").rc == 0


def test_locked_account_cannot_log_in(host):
    assert host.user("olduser").shell == "/usr/sbin/nologin"
    assert host.check_output("passwd -S olduser").split()[1] == "L"


def test_sysctl_file_content(host):
    content = host.file("/etc/sysctl.d/90-anvil-hardening.conf").content_string
    for line in ("net.ipv4.ip_forward = 0", "net.ipv4.tcp_syncookies = 1", "kernel.kptr_restrict = 2",
                 "net.ipv4.conf.all.accept_redirects = 0", "fs.suid_dumpable = 0", "vm.swappiness = 10"):
        assert line in content


def test_modules_and_core_dumps_are_off(host):
    assert "install cramfs /bin/false" in host.file("/etc/modprobe.d/90-anvil-blacklist.conf").content_string
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
