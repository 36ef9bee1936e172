#!/bin/bash
# The peer of the benchmark: the split placement as an operator would script it today with libcgroup's
# own tools (cgroup-tools), for a QEMU whose threads are named "CPU <n>/KVM".
#
#   peer.sh create|place|teardown OVERHEAD_ROOT CONTROLLERS ID [PID]
#
# CONTROLLERS is a libcgroup list such as cpu,cpuacct,cpuset. It is handed the id and pid as arguments, so
# it parses no JSON at all: that favours the peer. libcgroup has no tool that moves a single thread:
# `cgclassify TID` moves the TID's whole thread group (it lists /proc/TID/task), so the vCPU threads are
# written to the sandbox's `tasks` files directly, the sandbox read from /proc/PID/cgroup.
set -euo pipefail

stage=$1 root=$2 controllers=$3 id=$4
case $stage in
create)
	# cgcreate makes the parents too but seeds no cpuset: a new cpuset cgroup has no CPUs until told.
	new_root=0
	[[ -d /sys/fs/cgroup/cpuset$root ]] || new_root=1
	cgcreate -g "$controllers:$root/$id"
	if [[ $controllers == *cpuset* ]]; then
		if ((new_root)); then
			cgset -r cpuset.cpus="$(cgget -n -v -r cpuset.cpus /)" \
				-r cpuset.mems="$(cgget -n -v -r cpuset.mems /)" "$root"
		fi
		cgset -r cpuset.cpus="$(cgget -n -v -r cpuset.cpus "$root")" \
			-r cpuset.mems="$(cgget -n -v -r cpuset.mems "$root")" "$root/$id"
	fi
	;;
place)
	pid=$5
	declare -A sandbox
	while IFS=: read -r _ names path; do
		for name in ${names//,/ }; do sandbox[$name]=$path; done
	done </proc/"$pid"/cgroup
	cgclassify -g "$controllers:$root/$id" "$pid"
	for task in /proc/"$pid"/task/*; do
		read -r name <"$task/comm" || continue
		[[ $name == "CPU "*"/KVM" ]] || continue
		for controller in ${controllers//,/ }; do
			echo "${task##*/}" >"/sys/fs/cgroup/$controller${sandbox[$controller]}/tasks"
		done
	done
	;;
teardown)
	# One cgdelete per controller: libcgroup 2.0.2's cgdelete given several hierarchies (-g cpu,cpuacct:X,
	# or -g cpu:X -g cpuacct:X) removes X from the first only and exits 0, where cpu and cpuacct are
	# mounted apart, as on this project's test host.
	for controller in ${controllers//,/ }; do
		cgdelete -g "$controller:$root/$id"
		cgdelete -g "$controller:$root" 2>/dev/null || true # shared: busy while another container uses it
	done
	;;
*)
	echo "peer.sh: unknown stage '$stage'" >&2
	exit 2
	;;
esac
