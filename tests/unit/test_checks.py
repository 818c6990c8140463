"""Shared input checks (plugins/plugin_utils/checks.py) and every role's OPTIONS table."""

from __future__ import annotations

import importlib

import pytest
from ansible_collections.anvil.hetzner.plugins.plugin_utils import checks as c

FILTERS = {
    "base": "base_errors",
    "firewall": "firewall_errors",
    "docker": "docker_daemon",
    "caddy": "caddy_errors",
    "node_exporter": "node_exporter_errors",
    "postgres_backup": "postgres_backup_errors",
    "app_deploy": "app_deploy_errors",
    "monitoring": "monitoring_errors",
}


def table(role: str) -> dict[str, c.Check]:
    module = importlib.import_module(f"ansible_collections.anvil.hetzner.plugins.filter.{FILTERS[role]}")
    return module.OPTIONS


@pytest.mark.parametrize("role", sorted(FILTERS))
def test_every_declared_bad_value_is_refused_naming_the_option(role):
    for name, check in table(role).items():
        assert check.bad, f"{name}: a check without values it must refuse cannot be tested"
        for bad in check.bad:
            errors = c.check_options({name: bad}, {name: check}, {"invalid_calendars": [bad] if check.host else []})
            assert errors and all(e.startswith(name) for e in errors), (name, bad, errors)


@pytest.mark.parametrize(
    ("check", "good"),
    [
        (c.PORT, [1, 22, 65535]),
        (c.PORTS, [[], [22, 2222]]),
        (c.ADDRESSES, [["10.0.0.1", "2001:db8::1"]]),
        (c.NETWORKS, [["10.0.0.0/16", "10.0.0.5", "2001:db8::/32"]]),
        (c.USER_NAME, ["deploy", "_svc", "a-b_c"]),
        (c.EMAIL, ["", "ops@example.com"]),
        (c.CALENDAR, ["daily", "Mon *-*-* 04:00"]),
        (c.ABSOLUTE_PATH, ["/swapfile", "/var/lib/x.y"]),
        (c.int_range(1, 6), [1, 6]),
    ],
)
def test_good_values_pass(check, good):
    for value in good:
        assert check.errors("opt", value) == [], value


def test_booleans_are_not_ports_and_strings_are_not_lists():
    assert c.PORT.errors("p", True) == ["p: True is not a port number from 1 to 65535"]
    assert c.PORTS.errors("p", "22") == ["p: must be a list"]
    assert c.NETWORKS.errors("nets", "10.0.0.0/8") == ["nets: must be a list"]
    assert c.is_list(("a",)) and not c.is_list("a") and not c.is_list(b"a") and not c.is_list({"a": 1})


def test_list_items_are_named_by_index():
    assert c.NETWORKS.errors("firewall_trusted_networks", ["10.0.0.0/8", "any"]) == [
        "firewall_trusted_networks[1]: 'any' is not an IP address or a CIDR network"]


def test_nonempty_refuses_an_empty_list_and_keeps_item_checks():
    check = c.nonempty(c.SSH_ALGORITHMS)
    assert check.errors("algos", []) == ["algos: must not be empty"]
    assert check.errors("algos", ["a b"]) == ["algos[0]: 'a b' is not an OpenSSH algorithm name"]
    assert [] in check.bad


def test_calendar_is_judged_by_the_host():
    opts = {"sched": c.CALENDAR}
    assert c.check_options({"sched": "daily"}, opts, {"invalid_calendars": []}) == []
    assert c.check_options({"sched": "nope"}, opts, {"invalid_calendars": ["nope"]})[0].startswith(
        "sched: 'nope' is not a systemd calendar expression")


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ({"distribution": "Debian", "major": "12"}, True),
        ({"distribution": "Debian", "major": "13"}, True),
        ({"distribution": "Ubuntu", "major": "24"}, True),
        ({"distribution": "Debian", "major": "11", "version": "11.9"}, False),
        ({"distribution": "CentOS", "major": "9"}, False),
        ({"distribution": "Ubuntu", "major": "20"}, False),
    ],
)
def test_one_os_check_for_every_role(host, ok):
    errors = c.os_errors(host, "docker")
    assert (errors == []) is ok
    if not ok:
        assert "anvil.hetzner.docker" in errors[0] and "tested in CI: Debian 12/13" in errors[0]


# ---------------------------------------------------------------------------------------------
# Class 1: -e key=value gives strings; every role's filter sees them as the typed values.

import base64  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
AGE = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"  # age's README example
ED_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID3VHxF/Az01zod1MBwV7V3P53WIpstPgZTETc47VKy/ ci@test"
# What each role needs besides its defaults to pass (as tests/integration/test_spec_bad_inputs.py)
BASELINE = {
    "base": {"base_deploy_user_authorized_keys": [ED_KEY]}, "firewall": {}, "caddy": {}, "node_exporter": {},
    "postgres_backup": {"postgres_backup_age_recipients": [AGE]},
    "docker": {"docker_install_source": "distro", "docker_compose": False, "docker_buildx": False,
               "docker_daemon_options": {}},
    "app_deploy": {"app_deploy_name": "shop", "app_deploy_domains": ["shop.example.com"],
                   "app_deploy_services": [{"name": "web", "image": "registry.example.com/shop", "tag": "v1", "port": 8000}],
                   "app_deploy_health": {"path": "/health"}},
    "monitoring": {"monitoring_receivers": [{"name": "ops", "type": "webhook", "url": "https://hooks.example.com/a"}]},
}


def role_filter(role):
    module = importlib.import_module(f"ansible_collections.anvil.hetzner.plugins.filter.{FILTERS[role]}")
    return getattr(module, f"{role}_errors")


def typed_options(role):
    options = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    options = options["argument_specs"]["main"]["options"]
    return {n: o for n, o in options.items() if o["type"] in ("int", "bool", "float") and "default" in o}


def as_extra_var(value):
    """What -e name=value gives the role: the text, as Ansible's key=value parser leaves it."""
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.mark.parametrize("role", sorted(FILTERS))
def test_extra_var_strings_pass_exactly_as_typed_values(role):
    check = role_filter(role)
    options = typed_options(role)
    assert options or role == "firewall", role
    typed = {**{n: o["default"] for n, o in options.items()}, **BASELINE[role]}
    assert check(typed) == [], check(typed)
    strings = {n: as_extra_var(v) if n in options else v for n, v in typed.items()}
    assert any(isinstance(v, str) for v in strings.values()) or not options
    assert check(strings) == []
    # bools in every spelling an operator types
    for name, option in options.items():
        if option["type"] == "bool":
            spellings = ("true", "yes", "1", "on", "True") if typed[name] else ("false", "no", "0", "off", "False")
            for spelling in spellings:
                assert check({**typed, name: spelling}) == check(typed), (name, spelling)


@pytest.mark.parametrize("role", sorted(FILTERS))
def test_extra_var_strings_that_do_not_convert_are_refused_naming_the_option(role):
    check = role_filter(role)
    for name, option in typed_options(role).items():
        if option["type"] == "bool":
            continue  # the argument spec refuses "maybe" before the filter runs
        errs = check({**BASELINE[role], name: "thirty"})
        if name in table(role):
            assert errs and any(e.startswith(name) for e in errs), (name, errs)


def test_conversion_follows_ansible():
    assert c.convert("int", "30") == 30 and c.convert("int", " 30 ") == 30
    assert c.convert("int", "thirty") == "thirty" and c.convert("int", True) is True
    assert c.convert("bool", "yes") is True and c.convert("bool", "0") is False and c.convert("bool", 1) is True
    assert c.convert("bool", "maybe") == "maybe"
    assert c.convert("float", "0.5") == 0.5 and c.convert("float", "x") == "x"
    assert c.convert("str", "30") == "30"
    assert c.typed({"p": "22", "b": "no", "s": "22"}, {"p": "int", "b": "bool"}) == {"p": 22, "b": False, "s": "22"}
    assert c.spec_types("node_exporter")["node_exporter_port"] == "int"


def test_a_port_given_as_a_string_is_checked_as_a_number():
    ne = role_filter("node_exporter")
    assert ne({"node_exporter_port": "9100"}) == []
    assert [e.split(":")[0] for e in ne({"node_exporter_port": "70000"})] == ["node_exporter_port"]
    assert [e.split(":")[0] for e in ne({"node_exporter_port": "nine"})] == ["node_exporter_port"]


# ---------------------------------------------------------------------------------------------
# Class 2: ports already taken.

SSHD = {"port": 22, "proto": "tcp", "address": "0.0.0.0", "pid": 612, "process": "sshd", "exe": "/usr/sbin/sshd",
        "unit": "ssh.service"}
NGINX = {"port": 80, "proto": "tcp", "address": "::", "pid": 700, "process": "nginx", "exe": "/usr/sbin/nginx",
         "unit": "nginx.service"}
EXPORTER = {"port": 9100, "proto": "tcp", "address": "127.0.0.1", "pid": 801, "process": "prometheus-node",
            "exe": "/usr/bin/prometheus-node-exporter", "unit": "prometheus-node-exporter.service"}
DNS = {"port": 9100, "proto": "udp", "address": "0.0.0.0", "pid": 9, "process": "x", "exe": "", "unit": ""}
PRIVATE = {"port": 9200, "proto": "tcp", "address": "10.0.0.2", "pid": 10, "process": "elastic", "exe": "", "unit": ""}
LISTENING = [SSHD, NGINX, EXPORTER, DNS, PRIVATE]


def test_ports_taken_by_another_daemon_name_option_and_holder():
    errs = c.port_errors({"node_exporter_port": 22}, LISTENING, ("prometheus-node",))
    assert errs == ["node_exporter_port: port 22 is already taken by sshd (pid 612, ssh.service) on 0.0.0.0; "
                    "choose a free port"]
    assert c.port_errors({"node_exporter_port": 9100}, LISTENING, ("prometheus-node",)) == []  # its own, UDP aside
    assert c.port_errors({"x": 9100}, LISTENING, ())[0].startswith("x: port 9100 is already taken by prometheus-node")
    # a wildcard listener takes the port on every address; another specific address does not clash
    assert c.port_errors({"x": (80, "127.0.0.1")}, LISTENING)
    assert c.port_errors({"x": (9200, "127.0.0.1")}, LISTENING) == []
    assert c.port_errors({"x": (9200, "")}, LISTENING)
    assert c.port_errors({"x": 8080}, LISTENING) == []
    assert c.port_errors({"x": 22}, LISTENING, own_ports=[22]) == []
    assert c.port_errors({"x": "not a port"}, LISTENING) == []  # its own check says so


def test_ports_of_other_roles_configuration():
    errs = c.port_errors({"node_exporter_port": "2222"}, [], (), {"2222": "base_ssh_port (sshd)"})
    assert errs == []  # a string is the option's check's to refuse (the filters convert first)
    errs = c.port_errors({"node_exporter_port": 2222}, [], (), {"2222": "base_ssh_port (sshd)"})
    assert errs == ["node_exporter_port: port 2222 is already used by base_ssh_port (sshd); choose another port"]


def test_each_role_that_takes_a_port_refuses_a_taken_one():
    host = {"listening": LISTENING, "ports": {}}
    ne = role_filter("node_exporter")
    assert [e.split(":")[0] for e in ne({"node_exporter_port": 22}, host=host)] == ["node_exporter_port"]
    assert ne({"node_exporter_port": "9100"}, host=host) == []
    base = role_filter("base")
    errs = base({**BASELINE["base"], "base_ssh_port": 80}, host=host)
    assert [e.split(":")[0] for e in errs] == ["base_ssh_port"] and "nginx" in errs[0]
    assert base({**BASELINE["base"], "base_ssh_port": "22"}, host=host) == []  # sshd's own
    # socket activation: systemd (pid 1, init.scope) holds sshd's port
    activated = {**SSHD, "pid": 1, "process": "systemd", "exe": "/usr/lib/systemd/systemd", "unit": "init.scope"}
    assert base({**BASELINE["base"]}, host={"listening": [activated]}) == []
    caddy = role_filter("caddy")
    site = [{"domains": ["example.com"], "upstreams": ["127.0.0.1:8080"]}]
    errs = caddy({"caddy_sites": site}, host=host)
    assert [e.split(":")[0] for e in errs] == ["caddy_sites (HTTP)"] and "nginx" in errs[0]
    assert caddy({"caddy_sites": site}, host={"listening": [{**NGINX, "process": "caddy", "unit": "caddy.service"}]}) == []
    errs = caddy({"caddy_admin": "localhost:9100"}, host=host)
    assert [e.split(":")[0] for e in errs] == ["caddy_admin"]
    app = role_filter("app_deploy")
    errs = app({**BASELINE["app_deploy"], "app_deploy_ports": {"blue": 9100, "green": 18001}}, host={**host, "own_ports": []})
    assert [e.split(":")[0] for e in errs] == ["app_deploy_ports.blue"]
    mine = {"port": 18000, "proto": "tcp", "address": "127.0.0.1", "pid": 5, "process": "docker-proxy"}
    assert app({**BASELINE["app_deploy"]}, host={"listening": [mine], "own_ports": ["18000"]}) == []
    assert app({**BASELINE["app_deploy"]}, host={"listening": [mine], "own_ports": []})
    errs = app({**BASELINE["app_deploy"]}, host={"listening": [], "ports": {18001: "node_exporter_port"}})
    assert [e.split(":")[0] for e in errs] == ["app_deploy_ports.green"]


def test_a_real_listener_is_found_and_named():
    from ansible_collections.anvil.hetzner.plugins.modules.host_probe import listening
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        errs = role_filter("node_exporter")({"node_exporter_port": str(port)}, host={"listening": listening()})
    comm = Path("/proc/self/comm").read_text().strip()
    assert [e.split(":")[0] for e in errs] == ["node_exporter_port"]
    assert f"port {port} is already taken by {comm}" in errs[0]


# ---------------------------------------------------------------------------------------------
# Class 3: service users.

USERS = {"alice": {"exists": True, "uid": 1000, "gid": 1000, "groups": ["alice", "sudo"]},
         "ops": {"exists": True, "uid": 1001, "gid": 1001, "groups": ["ops", "docker"]},
         "toor": {"exists": True, "uid": 0, "gid": 0, "groups": ["root"]},
         "logs": {"exists": True, "uid": 1002, "gid": 4, "groups": ["adm"]},
         "prom": {"exists": True, "uid": 120, "gid": 120, "groups": ["prom"]},
         "new": {"exists": False, "uid": None, "gid": None, "groups": []}}


@pytest.mark.parametrize("name", ["alice", "ops", "toor", "logs", "deploy"])
def test_privileged_service_users_are_refused(name):
    errs = c.service_user_errors("node_exporter_user", name, USERS, "deploy")
    assert len(errs) == 1 and errs[0].startswith("node_exporter_user: ")


@pytest.mark.parametrize("name", ["prom", "new", "node-exporter"])
def test_unprivileged_service_users_pass(name):
    assert c.service_user_errors("node_exporter_user", name, USERS, "deploy") == []


def test_root_is_refused_by_the_option_check_without_the_host():
    ne = role_filter("node_exporter")
    errs = ne({"node_exporter_user": "root"})
    assert [e.split(":")[0] for e in errs] == ["node_exporter_user"]
    errs = ne({"node_exporter_user": "alice"}, host={"users": USERS})
    assert [e.split(":")[0] for e in errs] == ["node_exporter_user"] and "sudo" in errs[0]
    errs = ne({"node_exporter_user": "ops"}, host={"deploy_user": "ops"})
    assert "deploy user" in errs[0]


# ---------------------------------------------------------------------------------------------
# Class 4: values whose validity is computed.

def bech32_encode(hrp, data):
    charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
    acc, bits, values = 0, 0, []
    for byte in data:
        acc, bits = (acc << 8) | byte, bits + 8
        while bits >= 5:
            bits -= 5
            values.append((acc >> bits) & 31)
    if bits:
        values.append((acc << (5 - bits)) & 31)
    expanded = [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]
    poly = c._bech32_polymod(expanded + values + [0] * 6) ^ 1
    return hrp + "1" + "".join(charset[v] for v in values + [(poly >> 5 * (5 - i)) & 31 for i in range(6)])


def test_age_recipients_are_decoded_with_their_checksum():
    assert c.age_recipient_reason(AGE) is None
    made = bech32_encode("age", bytes(range(32)))
    assert c.age_recipient_reason(made) is None
    charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
    # every single changed character, at every position after age1, is refused (bech32 detects them all)
    for pos in range(4, len(AGE)):
        other = charset[(charset.index(AGE[pos]) + 1) % 32]
        changed = AGE[:pos] + other + AGE[pos + 1:]
        assert c.age_recipient_reason(changed), changed
    assert c.age_recipient_reason(AGE[:-1])  # cut
    assert c.age_recipient_reason(AGE.upper())  # age writes lower case
    assert c.age_recipient_reason(bech32_encode("age", bytes(31)))  # not a 32-byte key
    assert c.age_recipient_reason(bech32_encode("agx", bytes(32)))  # another HRP
    assert c.age_recipient_reason(bech32_encode("age", bytes(32)).replace("age1", "age1b", 1))  # b is not bech32


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Real public keys from this machine's ssh-keygen: type -> line."""
    out = {}
    tmp = tmp_path_factory.mktemp("keys")
    for name, args in (("ed25519", ["-t", "ed25519"]), ("rsa2048", ["-t", "rsa", "-b", "2048"]),
                       ("rsa1024", ["-t", "rsa", "-b", "1024"]), ("ecdsa256", ["-t", "ecdsa", "-b", "256"]),
                       ("ecdsa384", ["-t", "ecdsa", "-b", "384"]), ("ecdsa521", ["-t", "ecdsa", "-b", "521"])):
        subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", f"{name}@test", "-f", str(tmp / name)] + args, check=True)
        out[name] = (tmp / f"{name}.pub").read_text().strip()
        out[name + "-private"] = (tmp / name).read_text()
    subprocess.run(["ssh-keygen", "-q", "-s", str(tmp / "ed25519"), "-I", "id", "-n", "deploy", str(tmp / "ecdsa256.pub")],
                   check=True, capture_output=True)
    out["cert"] = (tmp / "ecdsa256-cert.pub").read_text().strip()
    return out


def wire(*fields):
    return base64.b64encode(b"".join(struct.pack(">I", len(f)) + f for f in fields)).decode()


def test_ssh_public_keys_are_parsed(keys):
    for name in ("ed25519", "rsa2048", "ecdsa256", "ecdsa384", "ecdsa521", "cert"):
        assert c.authorized_key_reason(keys[name]) is None, name
        assert c.authorized_key_reason('from="10.0.0.0/8,192.168.1.2",no-pty,command="echo \\"hi\\"" ' + keys[name]) is None
    assert "1024 bits" in c.authorized_key_reason(keys["rsa1024"])
    kind, data = keys["ed25519"].split()[:2]
    assert "another key type" in c.authorized_key_reason(f"ssh-rsa {data}")  # declared type differs from the blob
    assert c.authorized_key_reason(f"{kind} {data[:-8]}")  # cut
    assert c.authorized_key_reason(f"{kind} {data[:20]}*{data[21:]}")  # not base64
    assert c.authorized_key_reason(f"{kind} {wire(b'ssh-ed25519', bytes(31))}")  # 31-byte key
    assert c.authorized_key_reason(f"{kind} {wire(b'ssh-ed25519', bytes(32), b'x')}")  # trailing field
    assert c.authorized_key_reason(f"{kind}")
    assert c.authorized_key_reason("ssh-dss AAAAB3NzaC1kc3M= x").startswith("is a DSA")
    assert c.authorized_key_reason(f'from="x ssh-ed25519 {data}')  # an unterminated option
    sk = wire(b"sk-ssh-ed25519@openssh.com", bytes(32), b"ssh:")
    assert c.authorized_key_reason(f"sk-ssh-ed25519@openssh.com {sk} yubikey") is None
    assert c.authorized_key_reason(f"sk-ssh-ed25519@openssh.com {wire(b'sk-ssh-ed25519@openssh.com', bytes(32))}")
    point = b"\x04" + bytes(64)
    sk_ec = wire(b"sk-ecdsa-sha2-nistp256@openssh.com", b"nistp256", point, b"ssh:")
    assert c.authorized_key_reason(f"sk-ecdsa-sha2-nistp256@openssh.com {sk_ec}") is None
    wrong_curve = wire(b"ecdsa-sha2-nistp256", b"nistp384", point)
    assert c.authorized_key_reason(f"ecdsa-sha2-nistp256 {wrong_curve}")


def test_every_role_checks_ssh_keys_for_real(keys):
    base = role_filter("base")
    cut = keys["ed25519"][:-20]
    errs = base({**BASELINE["base"], "base_deploy_user_authorized_keys": [keys["rsa2048"], cut]})
    assert [e.split(":")[0] for e in errs] == ["base_deploy_user_authorized_keys[1]"]
    errs = base({**BASELINE["base"], "base_users": [{"name": "ops", "authorized_keys": [keys["rsa1024"]]}]})
    assert [e.split(":")[0] for e in errs] == ["base_users[0].authorized_keys[0]"]
    pg = role_filter("postgres_backup")
    assert pg({"postgres_backup_age_recipients": [keys["ed25519"], AGE]}) == []
    errs = pg({"postgres_backup_age_recipients": [cut]})
    assert [e.split(":")[0] for e in errs] == ["postgres_backup_age_recipients[0]"]
    assert pg({"postgres_backup_age_recipients": [keys["ecdsa256"]]})  # age takes ed25519 and RSA keys only


def test_bcrypt_hashes():
    bcrypt = pytest.importorskip("bcrypt")
    good = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()
    assert c.bcrypt_hash_reason(good) is None
    assert c.bcrypt_hash_reason(good.replace("$2b$", "$2y$", 1)) is None
    for bad in (good[:-1], good + "a", good.replace("$04$", "$03$"), good.replace("$04$", "$32$"),
                good.replace("$2b$", "$2x$"), good[:7] + "!" + good[8:], "$1$abc$def", "",
                good[:28] + "b" + good[29:], good[:-1] + "b"):
        assert c.bcrypt_hash_reason(bad), bad
    assert c.BCRYPT_HASH.errors("h", good[:-1]) == ["h: " + c.bcrypt_hash_reason(good[:-1])]  # never echoed


def test_pem_certificates(no_bcrypt):
    x509 = pytest.importorskip("cryptography.x509")
    import datetime
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    assert c.pem_certificate_reason(pem) is None and c.pem_certificate_reason(pem + pem) is None
    lines = pem.splitlines()
    assert c.pem_certificate_reason("\n".join(lines[:3] + lines[4:]))  # a line lost
    assert c.pem_certificate_reason(pem.replace("CERTIFICATE", "PUBLIC KEY"))
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    assert "private key" in c.pem_certificate_reason(private)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert c._der_sequence(der) and not c._der_sequence(der[:-1]) and not c._der_sequence(b"\x31" + der[1:])


# ---------------------------------------------------------------------------------------------
# Classes 5 and 6: one rule for secrets; a secret is never echoed.

def test_secret_rule():
    assert c.secret_reason("s3cret-pass") is None
    assert c.secret_reason("s3cret-pass\n") == c.NEWLINE_END
    assert c.secret_reason("s3cret-pass\r\n") == c.NEWLINE_END
    for bad in ("a\tb", "a\x1bb", "a\x00b", "a\nb", "a\x7fb", "a\x85b"):
        assert "control character" in c.secret_reason(bad), repr(bad)
    assert c.secret_reason("", required=True) and c.secret_reason("short", min_len=8)
    assert c.secret_reason("ünïcödé-pass") is None


def secret_options(value):
    """(role, variables, option named) for every option of every role that holds a secret."""
    auth = [{"username": "prometheus", "password": value}]
    site = {"domains": ["example.com"], "upstreams": ["127.0.0.1:8080"], "basic_auth": [{"username": "ops", "password": value}]}
    web = {"name": "web", "image": "registry.example.com/shop", "tag": "v1", "port": 8000, "environment": {"TOKEN": value}}
    return [
        ("node_exporter", {"node_exporter_basic_auth_users": auth}, "node_exporter_basic_auth_users[0].password"),
        ("caddy", {"caddy_sites": [site]}, "caddy_sites[0].basic_auth[0].password"),
        ("postgres_backup", {**BASELINE["postgres_backup"], "postgres_backup_source": "remote",
                             "postgres_backup_remote": {"host": "db.internal", "user": "backup", "password": value}},
         "postgres_backup_remote.password"),
        ("postgres_backup", {**BASELINE["postgres_backup"], "postgres_backup_on_failure_webhook": "https://h.example/" + value},
         "postgres_backup_on_failure_webhook"),
        ("docker", {**BASELINE["docker"], "docker_registries": [{"registry": "ghcr.io", "username": "u", "password": value}]},
         "docker_registries[0].password"),
        ("app_deploy", {**BASELINE["app_deploy"], "app_deploy_registry": {"registry": "ghcr.io", "username": "u",
                                                                          "password": value}}, "app_deploy_registry.password"),
        ("app_deploy", {**BASELINE["app_deploy"], "app_deploy_services": [web]}, "app_deploy_services[0].environment.TOKEN"),
        ("app_deploy", {**BASELINE["app_deploy"], "app_deploy_notify_webhook": "https://h.example/" + value},
         "app_deploy_notify_webhook"),
    ]


def at(errs, option):
    """The messages about an option (an item's label, like ' (web)', left out)."""
    return [e for e in errs if re.sub(r" \([^)]*\)", "", e).startswith(option + ":")]


def leaks(messages, secret):
    """Whether any part of the secret longer than 8 characters is in a message."""
    text = " ".join(messages)
    return any(secret[i:i + 9] in text for i in range(len(secret) - 8))


@pytest.mark.parametrize("case", range(len(secret_options(""))))
def test_a_secret_ending_in_a_newline_is_refused_by_every_role(case):
    role, variables, option = secret_options("vault-pass-Xy9\n")[case]
    errs = role_filter(role)(variables)
    assert [e for e in at(errs, option) if "ends with a newline (a YAML | block keeps it" in e], errs
    assert not leaks(errs, "vault-pass-Xy9")
    role, variables, option = secret_options("vault-pass-Xy9")[case]
    if role != "app_deploy" or option.endswith("TOKEN"):
        assert not at(role_filter(role)(variables), option)


PRIVATE_KEYS = [
    "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS5PRT8H",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBxMLRJw1cEBXCsyEtMYwEu0JnB7H5oHe0Tjz0KkjsSXwAAAJgAAAAAAAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
]


@pytest.mark.parametrize("secret", PRIVATE_KEYS)
def test_a_pasted_private_key_is_never_echoed(secret, keys):
    cases = [("postgres_backup", {"postgres_backup_age_recipients": [secret]}, "postgres_backup_age_recipients[0]"),
             ("base", {"base_deploy_user_authorized_keys": [secret]}, "base_deploy_user_authorized_keys[0]"),
             ("base", {**BASELINE["base"], "base_users": [{"name": "ops", "authorized_keys": [secret]}]},
              "base_users[0].authorized_keys[0]"),
             ("postgres_backup", {**BASELINE["postgres_backup"], "postgres_backup_offsite": {
                 "host": "u1.your-storagebox.de", "user": "u1", "host_key": secret}}, "postgres_backup_offsite.host_key")]
    for role, variables, option in cases:
        errs = role_filter(role)(variables)
        assert at(errs, option), (option, errs)
        assert not leaks(errs, secret), (option, errs)
    # a password may be any text: a key pasted there is refused only for its newline, and never shown
    for role, variables, option in secret_options(secret) + secret_options(keys["ed25519-private"]):
        errs = role_filter(role)(variables)
        assert not leaks(errs, secret) and not leaks(errs, keys["ed25519-private"]), (option, errs)
        assert at(errs, option) or not secret.endswith("\n")
    errs = role_filter("postgres_backup")({"postgres_backup_age_recipients": [secret]})
    assert "looks like a private key: never paste a secret key here" in errs[0]


def test_secret_checks_never_echo_the_value():
    check = c.Check(lambda v: "is wrong", secret=True, each=True)
    assert check.errors("opt", ["hunter2-hunter2"]) == ["opt[0]: is wrong"]


# ---------------------------------------------------------------------------------------------
# Class 7: host keys as ssh-keyscan prints them.

def test_host_keys_as_ssh_keyscan_prints_them(keys):
    ed, rsa = keys["ed25519"].rsplit(" ", 1)[0], keys["rsa2048"].rsplit(" ", 1)[0]
    for text in (f"[u1.your-storagebox.de]:23 {ed}",
                 f"# u1.your-storagebox.de:23 SSH-2.0-OpenSSH_9.6\n[u1.your-storagebox.de]:23 {ed}\n"
                 f"# u1.your-storagebox.de:23 SSH-2.0-OpenSSH_9.6\n[u1.your-storagebox.de]:23 {rsa}\n",
                 f"u1.your-storagebox.de {ed}", f"u1.your-storagebox.de,203.0.113.4 {ed}", ed, f"{ed} a comment",
                 f"\n{ed}\n\n"):
        found, reason = c.known_host_keys(text)
        assert reason is None, (text, reason)
        assert found[0] == tuple(ed.split())
    assert len(c.known_host_keys(f"[h]:23 {ed}\n[h]:23 {rsa}")[0]) == 2
    for bad in ("", "# only a comment\n", "ssh-ed25519", f"[h]:23 {ed[:-6]}", f"[h]:23 {ed}\ngarbage here",
                f"[h:23 {ed}", "[h]:23", f"[h]:23 {keys['rsa1024']}"):
        found, reason = c.known_host_keys(bad)
        assert found == [] and reason, bad
    pg = role_filter("postgres_backup")
    box = {"host": "u1.your-storagebox.de", "user": "u1"}
    keyscan = f"# u1.your-storagebox.de:23 SSH-2.0-OpenSSH_9.6\n[u1.your-storagebox.de]:23 {ed}\n[u1.your-storagebox.de]:23 {rsa}\n"
    assert pg({**BASELINE["postgres_backup"], "postgres_backup_offsite": {**box, "host_key": keyscan}}) == []
    errs = pg({**BASELINE["postgres_backup"], "postgres_backup_offsite": {**box, "host_key": keyscan[:-10]}})
    assert [e.split(":")[0] for e in errs] == ["postgres_backup_offsite.host_key"] and "line 3" in errs[0]
