"""The demo's sample app ("shop"): a web service that reads a row from its PostgreSQL accessory and
counts visits in its Redis accessory.

    shop.py            serve HTTP on :8080 (GET / and GET /health)
    shop.py migrate    create the table and its first row (app_deploy's migration, before the switch)

Settings from the environment (app_deploy writes them to a root-only file per release):
DATABASE_URL (postgresql://user:password@postgres:5432/db), REDIS_URL (redis://:password@redis:6379/0),
APP_VERSION (baked into each image's tag). Every connection has a 3 s bound.
"""

import http.server
import os
import sys

import psycopg2
import redis

VERSION = os.environ.get("APP_VERSION", "unknown")


def database():
    return psycopg2.connect(os.environ["DATABASE_URL"], connect_timeout=3)


def cache():
    return redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=3, socket_connect_timeout=3)


def migrate() -> int:
    with database() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS greetings (id serial PRIMARY KEY, text text NOT NULL)")
        cur.execute("INSERT INTO greetings (text) SELECT 'hello from PostgreSQL' WHERE NOT EXISTS (SELECT 1 FROM greetings)")
    print(f"shop {VERSION}: migrated")
    return 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status: int, body: str) -> None:
        data = (body + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # (the name http.server calls)
        # /health: both accessories answer (before the migration made the table: the health gate
        # runs first); /: the row the migration wrote and a visit counted in Redis
        health = self.path == "/health"
        try:
            conn = database()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1" if health else "SELECT text FROM greetings ORDER BY id LIMIT 1")
                    row = cur.fetchone()
            finally:
                conn.close()
            visits = cache().ping() if health else cache().incr("shop:visits")
        except Exception as exc:  # any failure of a dependency: Service Unavailable, with its kind
            self.answer(503, f"shop {VERSION}: unavailable ({type(exc).__name__})")
            return
        if health:
            self.answer(200, f"ok {VERSION}")
        else:
            self.answer(200, f"shop {VERSION}: {row[0] if row else 'no row yet'} (visit {visits}, counted in Redis)")

    def log_message(self, fmt, *args):
        sys.stderr.write(f"shop {VERSION} {self.address_string()} {fmt % args}\n")


def main() -> int:
    if sys.argv[1:] == ["migrate"]:
        return migrate()
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler)
    server.daemon_threads = True
    print(f"shop {VERSION} listening on :8080", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
