"""Realistic web traffic for the access and error log formats: requests, answers, clients.

A request is drawn in this order: the level (:func:`emitters.content.pick_level`, so
``error_ratio`` and ``level_mix`` hold), the status class it stands for (ERROR/FATAL a 5xx,
WARN a 4xx, the rest 2xx/3xx), the kind of request likely to end that way (scanners and
admin pages in the 4xx, health checks and assets in the 2xx), then its path, answer,
body size and client. Addresses are from the documentation ranges (RFC 5737, RFC 3849)
and 10.0.0.0/8, names from example domains; user agents are real strings.

Web server lines always carry their time and their level (an access line's level comes
from its status), so ``ContentOptions``' missing-field ratios do not apply to them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from emitters.content import HOSTS, USERS, ContentOptions, hex_id, ipv4, pick_level

WEB_HOSTS = tuple(h for h in HOSTS if h.startswith(("web", "api")))
SITES = ("shop.example", "www.example.com", "api.example.com", "status.example.net")
_SLUGS = ("shoes", "jackets", "outdoor", "kitchen", "garden", "books", "toys", "sale")
_WORDS = ("blue+jacket", "running+shoes", "gift", "tent", "coffee+grinder", "usb-c+cable")

BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36 Edg/122.0.2365.80",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.3.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.6261.105 Mobile Safari/537.36",
)
CRAWLERS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
)
API_CLIENTS = (
    "curl/8.5.0",
    "python-requests/2.31.0",
    "okhttp/4.12.0",
    "Go-http-client/1.1",
    "axios/1.6.7",
)
PROBES = ("kube-probe/1.29", "ELB-HealthChecker/2.0", "Blackbox Exporter/0.24.0")
PROMETHEUS = "Prometheus/2.50.1"
SCANNERS = (
    "Mozilla/5.0 zgrab/0.x",
    "python-requests/2.25.1",
    "curl/7.68.0",
    "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)",
)
_SCAN_PATHS = (
    "/wp-login.php", "/.env", "/.git/config", "/phpmyadmin/index.php", "/xmlrpc.php",
    "/cgi-bin/luci/;stok=/locale", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/boaform/admin/formLogin", "/actuator/health", "/server-status",
)  # fmt: skip

# Kinds of request, weighted per status class: what ends in a 2xx/3xx, a 4xx, a 5xx.
_KINDS = ("static", "page", "api", "login", "health", "admin", "scan")
_KIND_WEIGHTS = {
    "ok": (34, 16, 30, 4, 14, 2, 0),
    "client_error": (14, 8, 26, 10, 0, 10, 32),
    "server_error": (4, 14, 70, 8, 4, 0, 0),
}
_SERVER_ERRORS = ((500, 502, 503, 504), (35, 30, 20, 15))
_CLIENT_ERRORS = {
    "static": ((404,), (1,)),
    "page": ((404, 400, 405, 414), (80, 10, 6, 4)),
    "api": ((400, 401, 403, 404, 409, 413, 422, 429), (20, 12, 6, 30, 6, 4, 12, 10)),
    "login": ((401, 403, 429), (70, 10, 20)),
    "admin": ((401, 403), (60, 40)),
    "scan": ((404, 403, 400), (85, 10, 5)),
}


@dataclass(frozen=True, slots=True)
class WebRequest:
    """One request as a web server saw it (the fields an access log line carries)."""

    level: str
    kind: str
    client_ip: str
    method: str
    path: str
    protocol: str
    status: int
    bytes: int
    user: str | None
    referer: str | None
    user_agent: str | None
    site: str

    @property
    def request_line(self) -> str:
        return f"{self.method} {self.path} {self.protocol}"


def web_request(rng: random.Random, opts: ContentOptions) -> WebRequest:
    """One realistic request, its answer and its client."""
    level = pick_level(rng, opts)
    if level in ("ERROR", "FATAL"):
        klass = "server_error"
    elif level == "WARN":
        klass = "client_error"
    else:
        klass = "ok"
    kind = rng.choices(_KINDS, weights=_KIND_WEIGHTS[klass])[0]
    method, path = _route(rng, kind)
    status = _status(rng, klass, kind, method)
    agent = _agent(rng, kind, path)
    return WebRequest(
        level=level,
        kind=kind,
        client_ip=_client_ip(rng, kind),
        method=method,
        path=path,
        protocol=_protocol(rng, kind, agent),
        status=status,
        bytes=_body_bytes(rng, kind, status, path),
        user=rng.choice(USERS) if kind == "admin" and status < 400 else None,
        referer=_referer(rng, kind, agent),
        user_agent=agent,
        site=rng.choice(SITES[:3]),
    )


def level_of_status(status: int | None) -> str:
    """The level an access line gets from its status: 5xx ERROR, 4xx WARN, else INFO."""
    if status is None:
        return "INFO"
    if 500 <= status <= 599:
        return "ERROR"
    if 400 <= status <= 499:
        return "WARN"
    return "INFO"


def _route(rng: random.Random, kind: str) -> tuple[str, str]:
    n = rng.randint(1, 99_999)
    if kind == "static":
        return "GET", rng.choice(
            (
                f"/static/js/app.{hex_id(rng, 8)}.js",
                f"/static/css/main.{hex_id(rng, 8)}.css",
                f"/images/products/{n}.jpg",
                "/favicon.ico",
                "/fonts/inter-var.woff2",
            )
        )
    if kind == "page":
        return "GET", rng.choice(
            (
                "/",
                f"/products/{n}",
                f"/category/{rng.choice(_SLUGS)}?page={rng.randint(1, 12)}",
                f"/search?q={rng.choice(_WORDS)}",
                "/cart",
                "/checkout",
            )
        )
    if kind == "api":
        return rng.choice(
            (
                ("GET", f"/api/v1/orders/{n}"),
                ("GET", f"/api/v1/products?limit=20&offset={rng.randint(0, 50) * 20}"),
                ("GET", f"/api/v1/users/{rng.randint(1, 5000)}/orders"),
                ("POST", "/api/v1/orders"),
                ("PUT", f"/api/v1/cart/items/{n}"),
                ("PATCH", f"/api/v1/users/{rng.randint(1, 5000)}"),
                ("DELETE", f"/api/v1/cart/items/{n}"),
            )
        )
    if kind == "login":
        return rng.choice((("GET", "/login"), ("POST", "/login"), ("POST", "/api/v1/auth/token")))
    if kind == "health":
        return "GET", rng.choice(("/healthz", "/readyz", "/metrics", "/server-status?auto"))
    if kind == "admin":
        return "GET", rng.choice(("/admin/", "/admin/users", f"/admin/orders/{n}"))
    path = rng.choice(_SCAN_PATHS)
    return ("POST" if path == "/xmlrpc.php" else "GET"), path


def _status(rng: random.Random, klass: str, kind: str, method: str) -> int:
    if klass == "server_error":
        return rng.choices(*_SERVER_ERRORS)[0]
    if klass == "client_error":
        return rng.choices(*_CLIENT_ERRORS[kind])[0]
    if kind == "static":
        return 304 if rng.random() < 0.25 else 200
    if kind == "page":
        return rng.choices((200, 301, 302), weights=(90, 5, 5))[0]
    if kind == "login" and method == "POST":
        return 302 if rng.random() < 0.7 else 200
    if method == "POST":
        return 201
    if method == "DELETE":
        return 204
    return 200


def _body_bytes(rng: random.Random, kind: str, status: int, path: str) -> int:
    if status in (204, 304):
        return 0
    if 300 <= status < 400:
        return rng.randint(160, 320)
    if status >= 400:
        return rng.randint(150, 620)
    if kind == "static":
        if path.endswith(".js"):
            return rng.randint(20_000, 420_000)
        if path.endswith(".css"):
            return rng.randint(5_000, 90_000)
        if path == "/favicon.ico":
            return rng.choice((1_150, 5_430, 15_086))
        return rng.randint(10_000, 320_000)
    if kind == "health":
        return rng.randint(2_500, 24_000) if path == "/metrics" else rng.randint(2, 120)
    if kind == "page":
        return rng.randint(6_000, 64_000)
    return rng.randint(40, 8_000)


def _client_ip(rng: random.Random, kind: str) -> str:
    if kind == "health":
        return ipv4(rng, public=False)
    if rng.random() < 0.05:
        return f"2001:db8:{rng.getrandbits(16):x}::{rng.randint(1, 0xFFFF):x}"
    return ipv4(rng)


def _agent(rng: random.Random, kind: str, path: str) -> str | None:
    if kind == "health":
        return PROMETHEUS if path == "/metrics" else rng.choice(PROBES)
    if kind == "scan":
        return None if rng.random() < 0.15 else rng.choice(SCANNERS)
    if kind == "api":
        return rng.choice(BROWSERS if rng.random() < 0.5 else API_CLIENTS)
    if kind == "page" and rng.random() < 0.15:
        return rng.choice(CRAWLERS)
    return rng.choice(BROWSERS)


def _protocol(rng: random.Random, kind: str, agent: str | None) -> str:
    if kind == "scan":
        return rng.choice(("HTTP/1.1", "HTTP/1.0"))
    if agent in BROWSERS and rng.random() < 0.4:
        return "HTTP/2.0"
    return "HTTP/1.1"


def _referer(rng: random.Random, kind: str, agent: str | None) -> str | None:
    if agent not in BROWSERS or rng.random() < 0.25:
        return None
    if kind in ("static", "api"):
        return rng.choice(
            ("https://shop.example/", f"https://shop.example/products/{rng.randint(1, 99_999)}")
        )
    return rng.choice(
        ("https://shop.example/", "https://www.example.com/", "https://shop.example/cart")
    )
