#!/bin/sh
# /init of the value benchmark's cgroup v2 guest (run_value.py --part v2; busybox sh). A pure cgroup v2
# kernel (cgroup_no_v1=all) runs an inner QEMU, TCG, with no guest: its one vCPU spins at the reset vector
# (spin.bin, "jmp $"), so that it saturates the container's limit. For each run of each mode it makes S
# with that limit (cpu.max), starts the container's process in S, runs the hooks as crun does
# (createRuntime before exec, poststart right after), checks every thread's cgroup, and runs qmp-probe:
#   VALUE2-RUN <mode> <rep>   VALUE2-PLACE <tid> <name> <cgroup>   VALUE2-STAT <side> before|after <cpu.stat>
#   VALUE-QMP ... / VALUE-CPU ... (qmp-probe)   VALUE2-FAIL <why>   VALUE2-DONE
export PATH=/usr/local/bin:/bin:/usr/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
mount -t cgroup2 none /sys/fs/cgroup
. /etc/value2-params   # MODES REPS WINDOW INTERVAL_MS QUOTA PERIOD WARM
CG=/sys/fs/cgroup
echo "+cpu +cpuset" > $CG/cgroup.subtree_control
mkdir -p /run/vmm-cgroup-hooks /etc/vmm-cgroup-hooks /bundle
# The hooks' defaults but for vcpu_proof "names": the inner QEMU runs under TCG, its vCPU threads hold no KVM
# vCPU fds. They run with --gate=runtime, as the runtime wrapper adds them.
for mode in split sandbox-only; do
	printf '{"mode":"%s","vmm_names":["qemu-system-*"],"record_dir":"/run/vmm-cgroup-hooks","vcpu_proof":"names"}\n' \
		"$mode" > /etc/vmm-cgroup-hooks/$mode.json
done

state() { # id status pid
	printf '{"ociVersion":"1.0.2","id":"%s","status":"%s",%s"bundle":"/bundle","annotations":{"io.vmm-cgroup-hooks.enable":"true"}}\n' \
		"$1" "$2" "${3:+\"pid\":$3,}"
}
hook() { # stage mode id status pid
	state "$3" "$4" "$5" | "vmm-cgroup-$1" --config "/etc/vmm-cgroup-hooks/$2.json" --gate=runtime 2>/tmp/hook.err ||
		echo "VALUE2-FAIL $1 $3: $(tr '\n' ' ' < /tmp/hook.err)"
}
stats() { # when S
	for side in S vcpu overhead; do
		f=$2/cpu.stat
		[ $side != S ] && f=$2/$side/cpu.stat
		[ -r "$f" ] && echo "VALUE2-STAT $side $1 $(tr '\n' ' ' < "$f")"
	done
}

echo "VALUE2-READY $(grep -c ^processor /proc/cpuinfo) cpus"
for rep in $(seq 1 "$REPS"); do
	for mode in $MODES; do
		id=value2-$mode-$rep
		S=$CG/$id
		mkdir "$S"
		[ "$mode" != no-limit ] && echo "$QUOTA $PERIOD" > "$S/cpu.max"
		# the program: poststart may hand over to a settler only for a VMM or a launcher; a pid namespace
		# of its own, as a container has (on v2 one in the host's is not split: runc#3821)
		printf '{"ociVersion":"1.0.2","process":{"args":["qemu-system-x86_64"]},"linux":{"cgroupsPath":"/%s","namespaces":[{"type":"pid"}]}}\n' \
			"$id" > /bundle/config.json
		rm -f /tmp/go /tmp/qmp.sock
		mkfifo /tmp/go
		# The container's process: in S before exec, exec'ing the VMM when told (runc's init waits so).
		sh -c "echo \$\$ > $S/cgroup.procs; read x < /tmp/go; exec qemu-system-x86_64 -accel tcg,thread=multi \
			-smp 1 -m 16 -nodefaults -display none -bios /spin.bin -name $id,debug-threads=on \
			-qmp unix:/tmp/qmp.sock,server=on,wait=off" < /dev/null > /tmp/qemu.log 2>&1 &
		pid=$!
		while ! grep -q "^0::/$id\$" /proc/$pid/cgroup 2>/dev/null; do sleep 0.05; done
		echo "VALUE2-RUN $mode $rep"
		cfg=$mode
		[ "$mode" != no-limit ] && hook create-runtime "$cfg" "$id" created $pid
		echo go > /tmp/go
		[ "$mode" != no-limit ] && hook poststart "$cfg" "$id" running $pid
		if [ "$mode" = split ]; then
			n=0
			# the record is <id>-<hash of the bundle path>.json (the hooks' instance name)
			until record=$(ls /run/vmm-cgroup-hooks/$id-*.json 2>/dev/null) &&
				grep -q '"settler":null' "$record" 2>/dev/null && grep -q '"vcpus":\[[0-9]' "$record"; do
				n=$((n + 1))
				[ $n -gt 600 ] && { echo "VALUE2-FAIL $id: not placed: $(cat /run/vmm-cgroup-hooks/* 2>&1)"; break; }
				sleep 0.1
			done
		fi
		n=0
		while [ ! -S /tmp/qmp.sock ] && [ $n -lt 600 ]; do n=$((n + 1)); sleep 0.1; done
		sleep 0.5
		if ! [ -d /proc/$pid/task ]; then
			echo "VALUE2-FAIL $id: the inner QEMU exited: $(tr '\n' ' ' < /tmp/qemu.log)"
			[ "$mode" != no-limit ] && hook poststop "$cfg" "$id" stopped ""
			rmdir "$S"
			continue
		fi
		sleep "$WARM"
		for t in $(ls /proc/$pid/task); do
			echo "VALUE2-PLACE $t $(tr ' ' _ < /proc/$pid/task/$t/comm) $(cut -d: -f3 /proc/$pid/task/$t/cgroup)"
		done
		stats before "$S"
		qmp-probe /tmp/qmp.sock "$WINDOW" "$INTERVAL_MS" $pid
		stats after "$S"
		for t in $(ls /proc/$pid/task); do
			echo "VALUE2-PLACE $t $(tr ' ' _ < /proc/$pid/task/$t/comm) $(cut -d: -f3 /proc/$pid/task/$t/cgroup)"
		done
		kill -9 $pid
		wait $pid 2>/dev/null
		[ "$mode" != no-limit ] && hook poststop "$cfg" "$id" stopped ""
		rmdir "$S" || echo "VALUE2-FAIL rmdir $S"
	done
done
echo VALUE2-DONE
poweroff -f
