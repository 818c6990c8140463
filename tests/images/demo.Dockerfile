# The images `make demo` and the end-to-end test deploy (tests/harness/demo.sh, tests/e2e): one
# Debian image with PostgreSQL, Redis and the sample shop app (demo/shop.py), pushed to the demo's
# registry under three names (demo/postgres, demo/redis, demo/shop), since no public registry can
# be reached here. Its layers are stored once in the registry and on the server.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      postgresql-15 postgresql-client-15 redis-server python3-psycopg2 python3-redis \
 && systemctl disable postgresql.service redis-server.service \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/lib/postgresql/15/main
COPY demo/shop.py /app/shop.py
COPY demo/postgres-entrypoint /usr/local/bin/postgres-entrypoint
COPY demo/redis-entrypoint /usr/local/bin/redis-entrypoint
ENV APP_VERSION=v1 PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["/usr/bin/python3", "/app/shop.py"]
