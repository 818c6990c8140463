# A Hetzner Cloud server as the API sandbox's DockerBackend boots it (tests/sandbox): the systemd
# test image plus Debian's own cloud-init, configured as Hetzner's images are (root logs in with the
# project's SSH keys, no password login, user_data run at first boot) but reading a NoCloud seed
# directory that the backend mounts at /var/lib/cloud/seed/nocloud instead of Hetzner's metadata
# service. e2fsprogs/xfsprogs: what a server uses on a volume, and what the backend makes a
# volume's filesystem with (in a throwaway container of this image), as Hetzner formats it.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cloud-init e2fsprogs xfsprogs \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/lib/cloud/* /var/log/cloud-init*.log \
 && rm -f /etc/ssh/ssh_host_* \
 && systemctl disable ssh-hostkeys.service
COPY server-cloud.cfg /etc/cloud/cloud.cfg.d/90_hcloud_sandbox.cfg
