# Prometheus (server + promtool) from Debian's packages on top of the systemd test image: the
# monitoring server of the node_exporter scenario and the promtool that checks and unit-tests the
# shipped alert rules (tests/integration/test_alert_rules.py). prometheus-node-exporter provides the
# Debian binary the scenario packs into a release-style tarball (the tarball install path).
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      prometheus prometheus-node-exporter curl \
 && systemctl disable prometheus-node-exporter.service \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
