#!/bin/bash
# The peer of the benchmark: the split placement as an operator would script it today with libcgroup's
# own tools (cgroup-tools), for a QEMU whose threads are named "CPU <n>/KVM".
#
#   peer.sh create|place|teardown SANDBOX CONTROLLERS NAME [PID]
#
# O is where the hooks put it by default: beside the sandbox S, <parent of S>/NAME (NAME
# vmm-overhead-<instance>), with S's cpuset. CONTROLLERS is a libcgroup list such as cpu,cpuset. It is handed
# S, the name and the pid as arguments, so it parses no JSON at all: that favours the peer. libcgroup has no
# tool that moves a single thread: `cgclassify TID` moves the TID's whole thread group (it lists
# /proc/TID/task), so the vCPU threads are written to the sandbox's `tasks` files directly, the sandbox read
# from /proc/PID/cgroup.
set -euo pipefail

stage=$1 sandbox=$2 controllers=$3 name=$4
o=${sandbox%/*}/$name
case $stage in
create)
	# cgcreate seeds no cpuset: a new cpuset cgroup has no CPUs until told.
	cgcreate -g "$controllers:$o"
	if [[ $controllers == *cpuset* ]]; then
		cgset -r cpuset.cpus="$(cgget -n -v -r cpuset.cpus "$sandbox")" \
			-r cpuset.mems="$(cgget -n -v -r cpuset.mems "$sandbox")" "$o"
	fi
	;;
place)
	pid=$5
	declare -A where
	while IFS=: read -r _ names path; do
		for controller in ${names//,/ }; do where[$controller]=$path; done
	done </proc/"$pid"/cgroup
	cgclassify -g "$controllers:$o" "$pid"
	for task in /proc/"$pid"/task/*; do
		read -r comm <"$task/comm" || continue
		[[ $comm == "CPU "*"/KVM" ]] || continue
		for controller in ${controllers//,/ }; do
			echo "${task##*/}" >"/sys/fs/cgroup/$controller${where[$controller]}/tasks"
		done
	done
	;;
teardown)
	# One cgdelete per controller: libcgroup 2.0.2's cgdelete given several hierarchies (-g cpu,cpuset:X,
	# or -g cpu:X -g cpuset:X) removes X from the first only and exits 0, where the controllers are mounted
	# apart, as on this project's test host.
	for controller in ${controllers//,/ }; do
		cgdelete -g "$controller:$o"
	done
	;;
*)
	echo "peer.sh: unknown stage '$stage'" >&2
	exit 2
	;;
esac
