#!/bin/sh
# mmdebstrap --customize-hook for the node guest's root: `customize.sh ROOT`. Its text is part of the
# image's cache key, so an edit here rebuilds the image.
#
# A quiet, fast boot under TCG: no gettys (the serial console carries the results), no timers, none of
# podman's own units (podman.socket, the auto-update and restart units), a volatile journal. What is the
# test's rather than the node's (the test unit and its boot target, the hooks and their configuration,
# generator masks, D-Bus drop-ins, the machine id) comes with each run's payload (the initramfs), so that
# changing it does not rebuild the image.
set -eu
root=$1

mask() {
	for unit in "$@"; do
		ln -sf /dev/null "$root/etc/systemd/system/$unit"
	done
}

mask getty@.service serial-getty@.service console-getty.service container-getty@.service getty.target \
	systemd-firstboot.service systemd-timesyncd.service systemd-networkd-wait-online.service \
	apt-daily.service apt-daily-upgrade.service
for unit in "$root"/lib/systemd/system/*.timer "$root"/lib/systemd/system/podman*; do
	[ -e "$unit" ] && mask "$(basename "$unit")"
done

mkdir -p "$root/etc/systemd/journald.conf.d"
cat > "$root/etc/systemd/journald.conf.d/vmmcg-node.conf" <<'EOF'
[Journal]
Storage=volatile
ForwardToConsole=no
EOF

mkdir -p "$root/etc/systemd/system.conf.d"
cat > "$root/etc/systemd/system.conf.d/vmmcg-node.conf" <<'EOF'
[Manager]
ShowStatus=no
DefaultTimeoutStopSec=20s
EOF

# /etc/machine-id comes with each run's payload: mmdebstrap empties it after this hook.
echo vmmcg-node > "$root/etc/hostname"
: > "$root/etc/fstab"

# vfs storage: no overlay module in the guest, and nothing to set up. Podman's defaults otherwise:
# cgroup_manager "systemd", hooks from /usr/share/containers/oci/hooks.d and /etc/containers/oci/hooks.d.
mkdir -p "$root/etc/containers"
cat > "$root/etc/containers/storage.conf" <<'EOF'
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF
cat > "$root/etc/containers/containers.conf" <<'EOF'
[engine]
cgroup_manager = "systemd"
events_logger = "file"
EOF
