#!/usr/bin/env bash
# Turn a debootstrapped root file system ($ROOTFS) into something that looks like a fresh Hetzner
# Cloud server to Ansible: systemd boots in an unprivileged container, sshd gets host keys generated
# at first boot (as cloud-init does) and root logs in with a key that the test run injects.
set -euo pipefail
: "${ROOTFS:?ROOTFS must name the root file system}"

# Units that need real hardware or a console make systemd's boot "degraded" in a container.
for unit in systemd-udevd.service systemd-udev-trigger.service systemd-udevd-control.socket \
            systemd-udevd-kernel.socket getty@tty1.service console-getty.service \
            systemd-firstboot.service sys-kernel-config.mount; do
  ln -sf /dev/null "$ROOTFS/etc/systemd/system/$unit"
done

# Host keys are generated per container at boot, not baked into the image (shared keys would make
# every test host the same host to ssh).
rm -f "$ROOTFS"/etc/ssh/ssh_host_*
cat >"$ROOTFS/etc/systemd/system/ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate missing SSH host keys (first boot, like cloud-init)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/ssh-hostkeys.service \
  "$ROOTFS/etc/systemd/system/multi-user.target.wants/ssh-hostkeys.service"

# dpkg without an fsync per file, as Debian's own container images do (docker-apt-speedup): a
# container's disk is thrown away with it, and the roles' package installs take about a fifth less
# time in the test runs. Nothing a role does depends on it.
echo force-unsafe-io >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"

# A mirror that drops a connection now and then (CI fetches every package of every scenario from
# it): apt tries a download again instead of failing the scenario. The roles' tasks are unchanged.
printf 'Acquire::Retries "5";\n' >"$ROOTFS/etc/apt/apt.conf.d/80-anvil-test-retries"

install -d -m 0700 "$ROOTFS/root/.ssh"
: >"$ROOTFS/etc/machine-id"
echo debian >"$ROOTFS/etc/hostname"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
