#!/bin/sh
# /init of the node guest's initramfs (busybox-static): loads the modules Debian's kernel needs for its root
# disk (virtio-blk and ext4 are modules there), mounts the image, copies the payload (the hooks as
# `meson install` put them, the test scripts, the container image) over it and hands over to systemd.
# The root image runs with QEMU's -snapshot, so nothing written here outlives the guest.
PATH=/bin
fatal() {
	echo "VMMCG-RESULT FAIL boot/initramfs: $*"
	echo VMMCG-DONE
	sync
	poweroff -f
	sleep 5
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# In dependency order; /etc/vmmcg-node-modules lists them (the driver writes it from the same list).
for module in $(cat /etc/vmmcg-node-modules); do
	insmod "/lib/modules/$module.ko" || fatal "insmod $module failed"
done

i=0
while [ ! -b /dev/vda ]; do
	i=$((i + 1))
	[ "$i" -gt 100 ] && fatal "no /dev/vda 10 s after loading virtio_blk"
	sleep 0.1
done
mkdir -p /newroot
mount -t ext4 -o rw /dev/vda /newroot || fatal "mount -t ext4 /dev/vda failed"
cp -a /payload/. /newroot/ || fatal "copying the payload into the root failed"

umount /proc /sys /dev
exec switch_root /newroot /lib/systemd/systemd
