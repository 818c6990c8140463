"""The caddy role's input checks (filter anvil.hetzner.caddy_errors)."""

from __future__ import annotations

import pytest
from ansible_collections.anvil.hetzner.plugins.filter.caddy_errors import FilterModule, caddy_errors, caddy_size_bytes

GOOD_SITE = {
    "name": "app", "domains": ["example.com", "api.example.com"], "tls": "auto", "www_redirect": True,
    "upstreams": ["127.0.0.1:8080", "10.0.0.5:8080", "[::1]:9000", "app:3000"], "lb_policy": "least_conn",
    "health_uri": "/healthz", "health_interval": "5s", "health_timeout": "2s",
    "routes": [{"path": "/static/*", "root": "/srv/www"}, {"path": "/api/*", "upstreams": ["127.0.0.1:9000"], "strip_prefix": True}],
    "basic_auth": [{"username": "ops", "password": "a-long-password"}], "basic_auth_paths": ["/admin/*"],
    "encode": True, "max_body_size": "10MB", "headers": {"X-Robots-Tag": "noindex"}, "csp": "default-src 'self'",
    "raw": "respond /ping 200",
}


def check(**variables):
    base = {"caddy_sites": [], "caddy_acme_email": "", "caddy_admin": "localhost:2019", "caddy_metrics": False,
            "caddy_log_roll_size": "50MiB", "caddy_log_roll_keep_for": "720h", "caddy_csp": ""}
    base.update(variables)
    return caddy_errors(base)


def site(**changes):
    out = {"domains": ["a.test"], "root": "/srv"}
    out.update(changes)
    return out


def test_valid_input_has_no_errors():
    assert check(caddy_sites=[GOOD_SITE, site(domains=["b.test"], tls="internal")], caddy_acme_email="ops@example.com",
                 caddy_metrics=True) == []
    assert check() == []
    assert check(caddy_admin="off") == []
    assert check(caddy_admin="unix//run/caddy/admin.sock") == []
    assert "caddy_errors" in FilterModule().filters()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"caddy_sites": ["example.com"]}, "caddy_sites[0]: must be a mapping"),
        ({"caddy_sites": [site(domains=[])]}, "caddy_sites[0].domains: must be a non-empty list"),
        ({"caddy_sites": [site(domains="a.test")]}, "caddy_sites[0].domains: must be a non-empty list"),
        ({"caddy_sites": [site(domains=["exa mple.com"])]}, "'exa mple.com' is not a domain name"),
        ({"caddy_sites": [site(domains=["-bad.test"])]}, "'-bad.test' is not a domain name"),
        ({"caddy_sites": [site(), site()]}, "caddy_sites[1] (a.test).domains: a.test is already served by caddy_sites[0]"),
        ({"caddy_sites": [site(www_redirect=True), site(domains=["www.a.test"])]}, "www.a.test is already served by caddy_sites[0]"),
        ({"caddy_sites": [site(name="App Site")]}, ".name: 'App Site'"),
        ({"caddy_sites": [site(name="x"), site(name="x", domains=["b.test"])]}, "name: x is already caddy_sites[0]"),
        ({"caddy_sites": [{"domains": ["a.test"]}]}, "serves nothing"),
        ({"caddy_sites": [site(upstreams="127.0.0.1:80")]}, ".upstreams: must be a list"),
        ({"caddy_sites": [site(upstreams=["127.0.0.1:99999"])]}, ".upstreams[0]: '127.0.0.1:99999'"),
        ({"caddy_sites": [site(upstreams=["http://a b"])]}, ".upstreams[0]"),
        ({"caddy_sites": [site(root="srv")]}, ".root: 'srv' is not an absolute path"),
        ({"caddy_sites": [site(routes=[{"path": "api"}])]}, ".routes[0].path: must be a path"),
        ({"caddy_sites": [site(routes=[{"path": "/a/*", "root": "/srv", "upstreams": ["h:1"]}])]}, "needs exactly one of upstreams or root"),
        ({"caddy_sites": [site(routes=[{"path": "/a/*"}])]}, "needs exactly one of upstreams or root"),
        ({"caddy_sites": [site(health_uri="healthz")]}, ".health_uri: 'healthz'"),
        ({"caddy_sites": [site(health_interval="often")]}, ".health_interval: 'often'"),
        ({"caddy_sites": [site(max_body_size="lots")]}, ".max_body_size: 'lots'"),
        ({"caddy_sites": [site(basic_auth=[{"username": "ops", "password": "short"}])]}, "basic_auth[0].password: must be"),
        ({"caddy_sites": [site(basic_auth=[{"username": "o ps", "password": "long-enough"}])]}, "basic_auth[0].username"),
        ({"caddy_sites": [site(basic_auth=[{"username": "ops", "password": "long-enough"},
                                           {"username": "ops", "password": "long-enough-2"}])]},
         "basic_auth[1].username: ops is listed twice"),
        ({"caddy_sites": [site(basic_auth_paths=["admin"])]}, "basic_auth_paths[0]: 'admin'"),
        ({"caddy_sites": [site(headers={"X A": "1"})]}, "'X A' is not a header name"),
        ({"caddy_sites": [site(headers={"X-A": 'x"}\nimport evil'})]}, "headers['X-A']: braces, quotes and newlines"),
        ({"caddy_sites": [site(csp='x"}')]}, ".csp: braces"),
        ({"caddy_acme_email": "ops-at-example"}, "caddy_acme_email: 'ops-at-example'"),
        ({"caddy_admin": "0.0.0.0:2019"}, "caddy_admin: '0.0.0.0:2019'"),
        ({"caddy_admin": ":2019"}, "caddy_admin: ':2019'"),
        ({"caddy_admin": "off", "caddy_metrics": True}, "caddy_metrics: metrics are served on the admin endpoint"),
        ({"caddy_log_roll_size": "big"}, "caddy_log_roll_size"),
        ({"caddy_log_roll_keep_for": "a month"}, "caddy_log_roll_keep_for"),
        ({"caddy_csp": "a\nb"}, "caddy_csp: 'a\\nb' may not contain braces"),
    ],
)
def test_bad_input_is_named(variables, message):
    errors = check(**variables)
    assert any(message in e for e in errors), errors


def test_passwords_never_appear_in_messages():
    errors = check(caddy_sites=[site(basic_auth=[{"username": "o ps", "password": "short7!"}])])
    assert errors and not any("short7!" in e for e in errors)


@pytest.mark.parametrize(("size", "expected"), [("10MB", 10_000_000), ("1MiB", 1_048_576), ("512KB", 512_000),
                                                ("2 GiB", 2 * 1024**3), ("100", 100), ("1.5MB", 1_500_000)])
def test_sizes_read_as_caddy_reads_them(size, expected):
    assert caddy_size_bytes(size) == expected


def test_a_bad_size_raises():
    with pytest.raises(ValueError):
        caddy_size_bytes("lots")
