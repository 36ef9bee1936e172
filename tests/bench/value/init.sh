#!/bin/sh
# /init of the value benchmark's guest (busybox; see run_value.py). Loads virtio-blk, starts one spinner
# per CPU at SCHED_IDLE (the guest saturates its vCPUs), says VALUE-READY and then runs what the host asks on
# the console, one command a line:
#   io LATENCY_S INTERVAL_MS THROUGHPUT_S   the I/O probe (guest-io) on the virtio-blk disk
#   quit                                    power off
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do
	insmod /modules/$m.ko || echo "VALUE-FAIL insmod $m"
done
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
	[ -b /dev/vda ] && break
	sleep 0.1
done
[ -b /dev/vda ] || echo "VALUE-FAIL no /dev/vda"
cpus=$(grep -c ^processor /proc/cpuinfo)
i=0
while [ $i -lt "$cpus" ]; do
	/bin/guest-io spin &
	i=$((i + 1))
done
stty -echo < /dev/console 2>/dev/null
echo "VALUE-READY cpus=$cpus clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
while read -r cmd a b c; do
	case "$cmd" in
	io) /bin/guest-io /dev/vda "$a" "$b" "$c" ;;
	quit) break ;;
	esac
done < /dev/console
poweroff -f
