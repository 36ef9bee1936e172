#!/bin/sh
# /init of the cgroup v2 test guest that tests/v2guest/run_v2_guest.py builds and boots under QEMU/TCG.
#
# Mounts a pure cgroup v2 hierarchy, then for each mode (split, sandbox-only) creates a sandbox cgroup S with
# a CPU limit, starts the test VMM in it and runs the three hooks with an OCI state on standard input
# (createRuntime, poststart, poststop), checking after each stage where every thread is and what S and its
# children look like. In manual mode (run_v2_guest.py --manual) the placement is done here with shell
# writes instead of the hooks, and the kernel's answers to the writes the layout depends on are probed.
#
# Output for the driver, one line each on the console:
#   VMMCG-RESULT PASS <name>          VMMCG-RESULT FAIL <name>: <detail>
#   VMMCG-PROBE <name>: <what> -> <ok | ERRNO (message)>      VMMCG-INFO <text>      VMMCG-LOG <text>
#   VMMCG-DONE                         (last line: everything ran)
# Run by busybox sh (ash); everything here is busybox.

export PATH=/usr/local/bin:/bin:/sbin:/usr/bin:/usr/sbin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu

# Written by the driver: VMMCG_RUN (hooks|manual), VMMCG_PROBES (0|1), VMMCG_INSTANCES ("<id>:<instance>"
# pairs: the hooks' name of each case's container, the id and a hash of the bundle path, which names the
# record file), VMMCG_CASES: any of
#   split         split mode, the VMM's vCPU threads exist before createRuntime
#   sandbox-only  sandbox-only mode
#   split-late    split mode, the vCPU threads appear LATE_VCPU_DELAY_MS after the VMM starts: poststart
#                 hands over to its settler (hooks only)
VMMCG_RUN=hooks
VMMCG_PROBES=0
VMMCG_CASES="split sandbox-only"
VMMCG_INSTANCES=""
[ -r /etc/vmmcg-v2-params ] && . /etc/vmmcg-v2-params

# ---------------------------------------------------------------------------------------------------------
# Everything the hooks are given, in one place. Keys the lead may rename are only here.
CG=/sys/fs/cgroup
TEST_VMM=/tmp/test-vmm
# --no-kvm: the TCG guest has no /dev/kvm, so the stand-in holds no KVM fds (the hooks are told to trust the
# thread names: vcpu_proof "names" below).
TEST_VMM_ARGS="--vcpus 4 --io-threads 2 --spin --no-kvm"
LATE_VCPU_DELAY_MS=2000
VCPUS=4
OTHER_THREADS=3                        # the unnamed main thread and IO iothread0..1
HOOK_CONFIG=/etc/vmm-cgroup-hooks/test.json
RECORD_DIR=/run/vmm-cgroup-hooks
BUNDLE=/bundle-dir
LIMIT_CPU_MAX="50000 100000"           # what "the runtime" writes on S: quota 50000, period 100000
LIMIT_CPU_WEIGHT=200
LIMIT_CPUSET_CPUS=1
# The hooks' derived cap on S/overhead: 25% of S's 0.5 CPU is 125m, under the 250m floor: 250m.
OVERHEAD_CAP_CPU_MAX="25000 100000"
sandbox_name() { echo "vmmcg-v2-sandbox-$1"; }    # S, below the cgroup2 root; $1 = mode
container_id() { echo "vmmcg-v2-$1"; }

# Two keys differ from the hooks' defaults, as for any node without KVM vCPUs and with a container author
# who owns the node: vcpu_proof "names" (the stand-in holds no KVM vCPU fds here), and opt_in "annotation"
# (no runtime wrapper adds --gate=runtime: the annotation enables the hooks, as under podman).
hook_config_json() { # mode
	printf '{"mode":"%s","vmm_names":["test-vmm"],"record_dir":"%s","vcpu_proof":"names","opt_in":"annotation"}\n' \
		"$1" "$RECORD_DIR"
}
instance_name() { # id -> the record's name, as the driver computed it
	for pair in $VMMCG_INSTANCES; do
		[ "${pair%%:*}" = "$1" ] && { echo "${pair#*:}"; return; }
	done
	echo "$1-(no instance name from the driver)"
}
bundle_config_json() { # mode
	printf '{"ociVersion":"1.0.2","process":{"args":["test-vmm"]},"root":{"path":"rootfs"},'
	printf '"annotations":{"io.vmm-cgroup-hooks.enable":"true"},'
	printf '"linux":{"namespaces":[{"type":"pid"},{"type":"mount"}],"cgroupsPath":"/%s","resources":{"cpu":{"quota":50000,"period":100000}}}}\n' "$(sandbox_name "$1")"
}
state_json() { # mode status pid ("" leaves pid out, as podman's poststop does)
	pidfield=""
	[ -n "$3" ] && pidfield="\"pid\":$3,"
	printf '{"ociVersion":"1.0.2","id":"%s","status":"%s",%s"bundle":"%s","annotations":{"io.vmm-cgroup-hooks.enable":"true"}}\n' \
		"$(container_id "$1")" "$2" "$pidfield" "$BUNDLE"
}
# ---------------------------------------------------------------------------------------------------------

FAILED=0
pass() { echo "VMMCG-RESULT PASS $1"; }
fail() { echo "VMMCG-RESULT FAIL $1: $2"; FAILED=$((FAILED + 1)); }
info() { read -r up _ < /proc/uptime; echo "VMMCG-INFO [${up}s] $*"; }
check() { # name condition-description actual expected
	if [ "$3" = "$4" ]; then pass "$1"; else fail "$1" "$2: got '$3', want '$4'"; fi
}

# The errno name for the message busybox prints for a failed write, rmdir or mkdir.
errname() {
	case "$1" in
	*"Device or resource busy"*) echo "EBUSY ($1)" ;;
	*"Operation not supported"*) echo "EOPNOTSUPP ($1)" ;;
	*"Invalid argument"*) echo "EINVAL ($1)" ;;
	*"No such process"*) echo "ESRCH ($1)" ;;
	*"No such file or directory"*) echo "ENOENT ($1)" ;;
	*"Directory not empty"*) echo "ENOTEMPTY ($1)" ;;
	*"Permission denied"*) echo "EACCES ($1)" ;;
	*"Operation not permitted"*) echo "EPERM ($1)" ;;
	*"No space left on device"*) echo "ENOSPC ($1)" ;;
	*) echo "error ($1)" ;;
	esac
}
# try_write FILE VALUE: one write(2) of VALUE to FILE; sets TRY to "ok" or "ERRNO (message)".
try_write() {
	if TRY=$( { echo "$2" > "$1"; } 2>&1 ); then TRY=ok; else TRY=$(errname "$TRY"); fi
}
try_rmdir() {
	if TRY=$(rmdir "$1" 2>&1); then TRY=ok; else TRY=$(errname "$TRY"); fi
}
probe() { # name description (uses $TRY)
	echo "VMMCG-PROBE $1: $2 -> $TRY"
}
# expect_probe NAME DESCRIPTION WANT: a probe the layout depends on; PASS when the errno (first word) matches.
expect_probe() {
	probe "$1" "$2"
	got=${TRY%% *}
	if [ "$got" = "$3" ]; then pass "kernel-$1"; else fail "kernel-$1" "$2: got $TRY, want $3"; fi
}

uptime_cs() { read -r up _ < /proc/uptime; echo "${up%.*}${up#*.}"; }    # centiseconds since boot
rel() { echo "${1#$CG}"; }                                                # /sys/fs/cgroup/x -> /x
cgroup_of() { # task dir -> its cgroup2 path
	while IFS= read -r line; do
		case "$line" in 0::*) echo "${line#0::}"; return ;; esac
	done < "$1/cgroup"
}
first_line() { IFS= read -r line < "$1" 2>/dev/null && echo "$line"; }
children_of() { # subdirectories of a cgroup (its child cgroups)
	out=""
	for d in "$1"/*/; do [ -d "$d" ] && { d=${d%/}; out="$out ${d##*/}"; }; done
	echo "${out# }"
}

# ---------------------------------------------------------------------------------------------------------
# The test VMM: started as the container's process in S; VMM_PID is its pid. Returns once every thread is
# there and named, or, with "late", once its I/O threads are (the vCPU threads follow after a delay).
start_vmm() { # S [late]
	rm -f /tmp/vmmcg-v2-ready
	args=$TEST_VMM_ARGS
	[ "$2" = late ] && args="$args --vcpu-delay-ms $LATE_VCPU_DELAY_MS"
	sh -c 'echo $$ > "$1/cgroup.procs" && exec "$2" $3 --ready-file /tmp/vmmcg-v2-ready' vmm "$1" "$TEST_VMM" "$args" &
	VMM_PID=$!
	i=0
	while [ $i -lt 200 ]; do
		if [ "$2" = late ]; then
			grep -qx "IO iothread1" /proc/$VMM_PID/task/*/comm 2>/dev/null && return 0
		elif [ -e /tmp/vmmcg-v2-ready ]; then
			n=0
			for t in /proc/$VMM_PID/task/*; do
				case "$(cat "$t/comm" 2>/dev/null)" in "CPU "*"/KVM") n=$((n + 1)) ;; esac
			done
			[ $n -eq $VCPUS ] && return 0
		fi
		kill -0 $VMM_PID 2>/dev/null || break
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}
stop_vmm() {
	[ -n "$VMM_PID" ] || return 0
	kill -9 "$VMM_PID" 2>/dev/null
	wait "$VMM_PID" 2>/dev/null
	VMM_PID=""
}

# check_threads NAME VCPU_CGROUP OTHER_CGROUP: every vCPU thread (CPU n/KVM) in the first, every other thread
# in the second (cgroup paths as /proc shows them).
threads_placed() {
	TP_BAD=""; TP_V=0; TP_O=0
	for t in /proc/$VMM_PID/task/*; do
		read -r comm < "$t/comm" 2>/dev/null || continue
		at=$(cgroup_of "$t")
		case "$comm" in
		"CPU "*"/KVM") want=$1; TP_V=$((TP_V + 1)) ;;
		*) want=$2; TP_O=$((TP_O + 1)) ;;
		esac
		[ "$at" = "$want" ] || TP_BAD="$TP_BAD ${t##*/}($comm) in $at, want $want;"
	done
	[ -z "$TP_BAD" ] && [ $TP_V -eq $VCPUS ] && [ $TP_O -eq $OTHER_THREADS ]
}
check_threads() {
	if threads_placed "$2" "$3"; then
		pass "$1"
	else
		fail "$1" "vCPU threads $TP_V (want $VCPUS), others $TP_O (want $OTHER_THREADS);$TP_BAD"
	fi
}
# Waits up to $4 tenths of a second for the placement (a settler may still be working).
wait_threads() {
	i=0
	while [ $i -lt "$4" ]; do
		threads_placed "$2" "$3" && break
		sleep 0.1
		i=$((i + 1))
	done
	[ $i -gt 0 ] && info "$1: placement seen after ~$((i / 10)).$((i % 10)) s"
	check_threads "$1" "$2" "$3"
}

wait_eq() { # name description file want tenths-of-a-second
	i=0
	while [ $i -lt "$5" ] && [ "$(first_line "$3")" != "$4" ]; do sleep 0.1; i=$((i + 1)); done
	check "$1" "$2" "$(first_line "$3")" "$4"
}
# Processes of the hooks still running after the hook returned: settlers.
settlers() {
	for d in /proc/[0-9]*; do
		comm=""; read -r comm < "$d/comm" 2>/dev/null
		case "$comm" in vmm-cgroup-*) echo "${d##*/}" ;; esac
	done
}
# The watcher the record names (its pid), or nothing.
record_watcher() { # record
	sed -n 's/.*"watcher": *{"pid": *\([0-9]*\).*/\1/p' "$1" 2>/dev/null
}
# Once placed, the hook processes left are the record's watcher alone (the settler that became it).
wait_only_watcher() { # name record tenths-of-a-second
	i=0
	while [ $i -lt "$3" ]; do
		w=$(record_watcher "$2")
		[ -n "$w" ] && [ "$(settlers | tr '\n' ' ')" = "$w " ] && break
		sleep 0.1; i=$((i + 1))
	done
	left=$(settlers | tr '\n' ' ')
	w=$(record_watcher "$2")
	check "$1" "hook processes running once placed (want the record's watcher, '$w')" "$left" "${w:+$w }"
	[ -n "$w" ] || check "$1-named" "the record names a watcher" no yes
}
wait_settlers_gone() { # name tenths-of-a-second
	i=0
	while [ $i -lt "$2" ] && [ -n "$(settlers)" ]; do sleep 0.1; i=$((i + 1)); done
	left=$(settlers | tr '\n' ' ')
	check "$1" "hook processes (settlers) still running" "$left" ""
}

# Throttling proves a cgroup's cpu.max is enforced on the spinning vCPU threads in it.
nr_throttled() {
	while read -r key value; do [ "$key" = nr_throttled ] && { echo "$value"; return; }; done < "$1/cpu.stat"
	echo 0
}
check_throttled() { # name cgroup want(yes|no)
	a=$(nr_throttled "$2"); sleep 1; b=$(nr_throttled "$2")
	if [ "$b" -gt "$a" ]; then got=yes; else got=no; fi
	check "$1" "$(rel "$2") throttled during 1 s (nr_throttled $a -> $b)" "$got" "$3"
}

# ---------------------------------------------------------------------------------------------------------
# The hooks, or the same placement by hand (manual mode).
run_hook() { # mode stage status pid [result-name]
	name=${5:-$1-$2-exit}
	state_json "$1" "$3" "$4" > /tmp/vmmcg-v2-state.json
	start=$(uptime_cs)
	"vmm-cgroup-$2" --config "$HOOK_CONFIG" < /tmp/vmmcg-v2-state.json > /tmp/vmmcg-v2-hook.log 2>&1
	rc=$?
	info "$1: vmm-cgroup-$2 exit $rc after $(( $(uptime_cs) - start ))0 ms"
	while IFS= read -r line; do echo "VMMCG-LOG $1 $2: $line"; done < /tmp/vmmcg-v2-hook.log
	check "$name" "vmm-cgroup-$2 exit status" "$rc" 0
}

manual_create_runtime() { # S
	for child in vcpu overhead; do
		mkdir "$1/$child" && echo threaded > "$1/$child/cgroup.type" || return 1
	done
	echo "+cpu +cpuset" > "$1/cgroup.subtree_control" || return 1
	for file in cpu.max cpu.weight cpuset.cpus; do
		echo "$(first_line "$1/$file")" > "$1/vcpu/$file" || return 1
	done
	echo "$OVERHEAD_CAP_CPU_MAX" > "$1/overhead/cpu.max" || return 1
}
manual_poststart() { # S
	for t in /proc/$VMM_PID/task/*; do
		case "$(cat "$t/comm")" in
		"CPU "*"/KVM") echo "${t##*/}" > "$1/vcpu/cgroup.threads" || return 1 ;;
		*) echo "${t##*/}" > "$1/overhead/cgroup.threads" || return 1 ;;
		esac
	done
	echo "max 100000" > "$1/cpu.max"
}
manual_poststop() { # S
	for child in vcpu overhead; do
		for tid in $(cat "$1/$child/cgroup.threads"); do echo "$tid" > "$1/cgroup.threads"; done
		rmdir "$1/$child" || return 1
	done
	echo "$LIMIT_CPU_MAX" > "$1/cpu.max" && echo "-cpu -cpuset" > "$1/cgroup.subtree_control"
}
stage() { # mode stage status pid S
	if [ "$VMMCG_RUN" = manual ]; then
		# sandbox-only: nothing is created or moved.
		[ "$1" = sandbox-only ] && return 0
		case "$2" in
		create-runtime) manual_create_runtime "$5" ;;
		poststart) manual_poststart "$5" ;;
		poststop) manual_poststop "$5" ;;
		esac
		check "$1-$2-manual" "placement by hand (shell writes) status" "$?" 0
	else
		run_hook "$1" "$2" "$3" "$4"
	fi
}

# ---------------------------------------------------------------------------------------------------------
run_case() { # mode: split | sandbox-only | split-late
	mode=$1
	layout=$mode; late=""
	[ "$mode" = split-late ] && { layout=split; late=late; }
	if [ -n "$late" ] && [ "$VMMCG_RUN" = manual ]; then
		info "case $mode: hooks only, skipped in manual mode"
		return
	fi
	S=$CG/$(sandbox_name "$mode")
	s=$(rel "$S")
	id=$(container_id "$mode")
	record=$RECORD_DIR/$(instance_name "$id").json
	info "case $mode: S = $s, id $id, record $record, placement by $VMMCG_RUN"

	# What the runtime does: S with the container's limits, the container's process in it.
	if ! mkdir "$S" || ! echo "$LIMIT_CPU_MAX" > "$S/cpu.max" || ! echo "$LIMIT_CPU_WEIGHT" > "$S/cpu.weight" ||
		! echo "$LIMIT_CPUSET_CPUS" > "$S/cpuset.cpus"; then
		fail "$mode-setup" "could not create $s with its limits"
		return
	fi
	mkdir -p "$BUNDLE" "$(dirname "$HOOK_CONFIG")"
	bundle_config_json "$mode" > "$BUNDLE/config.json"
	hook_config_json "$layout" > "$HOOK_CONFIG"
	if ! start_vmm "$S" $late; then
		fail "$mode-setup" "the test VMM did not start with $VCPUS vCPU threads in $s"
		stop_vmm; rmdir "$S"
		return
	fi
	info "$mode: test VMM pid $VMM_PID, threads: $(ls /proc/$VMM_PID/task | tr '\n' ' ')"
	[ -z "$late" ] && check_threads "$mode-start-all-in-S" "$s" "$s"

	# createRuntime
	stage "$mode" create-runtime created "$VMM_PID" "$S"
	if [ "$layout" = split ]; then
		check "$mode-created-children" "children of $s" "$(children_of "$S")" "overhead vcpu"
		check "$mode-S-type" "$s/cgroup.type" "$(first_line "$S/cgroup.type")" "domain threaded"
		check "$mode-vcpu-type" "$s/vcpu/cgroup.type" "$(first_line "$S/vcpu/cgroup.type")" threaded
		check "$mode-overhead-type" "$s/overhead/cgroup.type" "$(first_line "$S/overhead/cgroup.type")" threaded
		check "$mode-S-subtree-control" "$s/cgroup.subtree_control" "$(first_line "$S/cgroup.subtree_control")" "cpuset cpu"
		check "$mode-vcpu-controllers" "$s/vcpu/cgroup.controllers (memory, pids, io stay on S)" \
			"$(first_line "$S/vcpu/cgroup.controllers")" "cpuset cpu"
		check "$mode-vcpu-cpu.max" "$s/vcpu/cpu.max" "$(first_line "$S/vcpu/cpu.max")" "$LIMIT_CPU_MAX"
		check "$mode-vcpu-cpu.weight" "$s/vcpu/cpu.weight" "$(first_line "$S/vcpu/cpu.weight")" "$LIMIT_CPU_WEIGHT"
		check "$mode-vcpu-cpuset.cpus" "$s/vcpu/cpuset.cpus" "$(first_line "$S/vcpu/cpuset.cpus")" "$LIMIT_CPUSET_CPUS"
		check "$mode-overhead-cpu.max" "$s/overhead/cpu.max (the derived cap: no overhead limits configured)" \
			"$(first_line "$S/overhead/cpu.max")" "$OVERHEAD_CAP_CPU_MAX"
		check "$mode-S-cpu.max-kept-until-placed" "$s/cpu.max after createRuntime" "$(first_line "$S/cpu.max")" "$LIMIT_CPU_MAX"
		[ -z "$late" ] && check_threads "$mode-created-threads-still-in-S" "$s" "$s"
	else
		check "$mode-created-no-children" "children of $s" "$(children_of "$S")" ""
		check "$mode-S-type" "$s/cgroup.type" "$(first_line "$S/cgroup.type")" domain
	fi
	if [ "$VMMCG_RUN" = hooks ]; then
		[ -e "$record" ] && got=yes || got=no
		check "$mode-record-written" "$record exists (records: $(ls "$RECORD_DIR" | tr '\n' ' '))" "$got" yes
		got=""
		for field in "\"name\": *\"$(instance_name "$id")\"" "\"bundle\": *\"$BUNDLE\"" \
			"\"phase\": *\"created\"" "\"version\": *2"; do
			grep -Eq "$field" "$record" 2>/dev/null || got="$got missing $field;"
		done
		check "$mode-record-fields" "$record: name, bundle, phase, version" "$got" ""
	fi

	# poststart
	stage "$mode" poststart running "$VMM_PID" "$S"
	if [ "$VMMCG_RUN" = hooks ]; then
		if grep -q settler /tmp/vmmcg-v2-hook.log; then used=yes; else used=no; fi
		info "$mode: poststart handed over to a settler: $used; hook processes left: '$(settlers | tr '\n' ' ')'"
		[ -n "$late" ] && check "$mode-settler-started" "poststart log names a settler" "$used" yes
	fi
	if [ "$layout" = split ]; then
		wait_threads "$mode-placed" "$s/vcpu" "$s/overhead" 150
		# The settler lifts S's limit after it has placed the vCPU threads: allow it a moment.
		wait_eq "$mode-S-relaxed" "$s/cpu.max after poststart" "$S/cpu.max" "max 100000" 50
		[ "$VMMCG_RUN" = hooks ] && wait_only_watcher "$mode-only-watcher" "$record" 200
		check "$mode-vcpu-limit-kept" "$s/vcpu/cpu.max after poststart" "$(first_line "$S/vcpu/cpu.max")" "$LIMIT_CPU_MAX"
		check_throttled "$mode-vcpu-throttled" "$S/vcpu" yes
		check_throttled "$mode-overhead-not-throttled" "$S/overhead" no
		# A process whose threads sit in threaded children: S's cgroup.procs still names it.
		grep -qx "$VMM_PID" "$S/cgroup.procs" && got=yes || got=no
		info "$mode: $s/cgroup.procs lists the VMM: $got; its memory.current: $(first_line "$S/memory.current")"
	else
		sleep 0.5   # nothing should move: give a wrongly started settler the chance to show itself
		check_threads "$mode-placed" "$s" "$s"
		check "$mode-S-limit-kept" "$s/cpu.max after poststart" "$(first_line "$S/cpu.max")" "$LIMIT_CPU_MAX"
		check_throttled "$mode-S-throttled" "$S" yes
	fi

	# poststop: crun passes pid 0; the VMM is still alive here so that its threads can be seen moved back.
	stage "$mode" poststop stopped 0 "$S"
	check_threads "$mode-poststop-all-in-S" "$s" "$s"
	check "$mode-poststop-no-children" "children of $s" "$(children_of "$S")" ""
	check "$mode-poststop-S-type" "$s/cgroup.type" "$(first_line "$S/cgroup.type")" domain
	check "$mode-poststop-S-subtree-control" "$s/cgroup.subtree_control" "$(first_line "$S/cgroup.subtree_control")" ""
	check "$mode-poststop-S-cpu.max" "$s/cpu.max restored" "$(first_line "$S/cpu.max")" "$LIMIT_CPU_MAX"
	check "$mode-poststop-S-cpu.weight" "$s/cpu.weight" "$(first_line "$S/cpu.weight")" "$LIMIT_CPU_WEIGHT"
	if [ "$VMMCG_RUN" = hooks ]; then
		[ -e "$record" ] && got=yes || got=no
		check "$mode-record-removed" "$record exists" "$got" no
		wait_settlers_gone "$mode-poststop-watcher-gone" 50
		# Idempotent: a second poststop, as podman runs it (no pid), has nothing to do.
		run_hook "$mode" poststop stopped "" "$mode-poststop-again-exit"
		check "$mode-poststop-again-no-children" "children of $s" "$(children_of "$S")" ""
	fi

	stop_vmm
	# Leave nothing behind, even after a failure above.
	for child in vcpu overhead; do [ -d "$S/$child" ] && rmdir "$S/$child"; done
	try_rmdir "$S"
	check "$mode-cleanup" "rmdir $s after the VMM was killed" "$TRY" ok
}

# ---------------------------------------------------------------------------------------------------------
# Kernel probes: what the cgroup v2 core accepts and refuses for this layout, with errnos. They run in a
# separate sandbox P with its own test VMM; every phase leaves P as it found it, and P is removed at the end.
# Each probe the layout depends on is also a result (kernel-<name>) with the answer this kernel gave.
all_in() { threads_placed "$1" "$1"; }
move_all_threads() { # from-cgroup to-cgroup
	for tid in $(cat "$1/cgroup.threads"); do echo "$tid" > "$2/cgroup.threads"; done
}
run_probes() {
	P=$CG/vmmcg-v2-probe
	p=$(rel "$P")
	info "probes in $p"
	mkdir "$P" || { fail probes-setup "mkdir $p"; return; }
	if ! start_vmm "$P"; then
		fail probes-setup "test VMM did not start in $p"; stop_vmm; rmdir "$P"; return
	fi
	vcpu_tid=""; io_tid=""
	for t in /proc/$VMM_PID/task/*; do
		case "$(cat "$t/comm")" in
		"CPU 0/KVM") vcpu_tid=${t##*/} ;;
		"IO iothread0") io_tid=${t##*/} ;;
		esac
	done
	info "probe VMM pid $VMM_PID, vCPU tid $vcpu_tid, IO tid $io_tid"
	type_of() { first_line "$1/cgroup.type"; }

	# A. P holds the VMM and has no children: domain controllers are refused (no internal processes),
	#    threaded ones (cpu, cpuset) are accepted, and that alone makes P a threaded root.
	try_write "$P/cgroup.subtree_control" "+memory"
	expect_probe A1-subtree-memory-populated "'+memory' > $p/cgroup.subtree_control, P holds the VMM, no children" EBUSY
	try_write "$P/cgroup.subtree_control" "+cpu +cpuset"
	expect_probe A2-subtree-cpu-populated "'+cpu +cpuset' > $p/cgroup.subtree_control, P holds the VMM, no children" ok
	check kernel-A2-type "$p/cgroup.type: holds tasks, cpu/cpuset in subtree_control, no children" "$(type_of "$P")" "domain threaded"
	mkdir "$P/x"
	check kernel-A3-new-child-type "type of a child made now ($p/x)" "$(type_of "$P/x")" "domain invalid"
	try_write "$P/x/cgroup.threads" "$vcpu_tid"
	expect_probe A3-tid-to-invalid-threads "vCPU tid > $p/x/cgroup.threads (x: domain invalid)" EOPNOTSUPP
	try_write "$P/x/cgroup.procs" "$VMM_PID"
	expect_probe A3-pid-to-invalid-procs "VMM pid > $p/x/cgroup.procs (x: domain invalid)" EOPNOTSUPP
	rmdir "$P/x"
	try_write "$P/cgroup.subtree_control" "-cpu -cpuset"
	expect_probe A4-subtree-clear "'-cpu -cpuset' > $p/cgroup.subtree_control" ok
	check kernel-A4-type "$p/cgroup.type once cleared" "$(type_of "$P")" domain

	# B. A domain child: a thread cannot leave its process's domain; cgroup.procs takes the whole process.
	mkdir "$P/a"
	check kernel-B1-child-type "$p/a/cgroup.type" "$(type_of "$P/a")" domain
	try_write "$P/a/cgroup.threads" "$vcpu_tid"
	expect_probe B1-tid-to-domain-threads "vCPU tid > $p/a/cgroup.threads (a: domain)" EOPNOTSUPP
	try_write "$P/a/cgroup.procs" "$vcpu_tid"
	expect_probe B2-tid-to-domain-procs "vCPU tid > $p/a/cgroup.procs (a: domain)" ok
	all_in "$p/a" && got="all $((TP_V + TP_O)) threads" || got="not all:$TP_BAD"
	check kernel-B2-procs-moves-whole-process "threads moved to $p/a by writing one vCPU tid to cgroup.procs" \
		"$got" "all $((VCPUS + OTHER_THREADS)) threads"
	try_write "$P/cgroup.procs" "$VMM_PID"
	expect_probe B3-pid-back "VMM pid > $p/cgroup.procs" ok

	# C. Threaded children while P holds the VMM: the layout of split mode.
	try_write "$P/a/cgroup.type" threaded
	expect_probe C1-type-threaded "'threaded' > $p/a/cgroup.type, P holds the VMM" ok
	check kernel-C1-root-type "$p/cgroup.type once a child is threaded" "$(type_of "$P")" "domain threaded"
	try_write "$P/a/cgroup.type" domain
	expect_probe C2-type-back-to-domain "'domain' > $p/a/cgroup.type (a: threaded)" EINVAL
	mkdir "$P/b"
	check kernel-C3-sibling-type "type of a child made after a became threaded ($p/b)" "$(type_of "$P/b")" "domain invalid"
	try_write "$P/b/cgroup.threads" "$vcpu_tid"
	expect_probe C3-tid-to-invalid-threads "vCPU tid > $p/b/cgroup.threads (b: domain invalid)" EOPNOTSUPP
	try_write "$P/b/cgroup.type" threaded
	expect_probe C3-type-threaded-second "'threaded' > $p/b/cgroup.type" ok
	try_write "$P/cgroup.subtree_control" "+memory"
	expect_probe C4-subtree-memory-threaded "'+memory' > $p/cgroup.subtree_control, threaded children" EOPNOTSUPP
	try_write "$P/cgroup.subtree_control" "+cpu +cpuset"
	expect_probe C4-subtree-cpu-threaded "'+cpu +cpuset' > $p/cgroup.subtree_control, threaded children, P holds the VMM" ok
	check kernel-C4-child-controllers "$p/a/cgroup.controllers" "$(first_line "$P/a/cgroup.controllers")" "cpuset cpu"
	try_write "$P/a/cpu.max" "$LIMIT_CPU_MAX"
	expect_probe C4-child-cpu.max "'$LIMIT_CPU_MAX' > $p/a/cpu.max" ok
	try_write "$P/a/cpu.weight" "$LIMIT_CPU_WEIGHT"
	expect_probe C4-child-cpu.weight "'$LIMIT_CPU_WEIGHT' > $p/a/cpu.weight" ok
	try_write "$P/a/cpuset.cpus" "$LIMIT_CPUSET_CPUS"
	expect_probe C4-child-cpuset.cpus "'$LIMIT_CPUSET_CPUS' > $p/a/cpuset.cpus" ok
	try_write "$P/a/cgroup.threads" "$vcpu_tid"
	expect_probe C5-tid-to-threaded-threads "vCPU tid > $p/a/cgroup.threads (a: threaded)" ok
	check kernel-C5-one-thread-moved "vCPU thread, main thread" \
		"$(cgroup_of /proc/$VMM_PID/task/$vcpu_tid) $(cgroup_of /proc/$VMM_PID/task/$VMM_PID)" "$p/a $p"
	try_write "$P/b/cgroup.threads" "$VMM_PID"
	expect_probe C6-main-tid-to-threads "VMM pid (main thread) > $p/b/cgroup.threads" ok
	check kernel-C6-main-thread-only "main thread, an IO thread" \
		"$(cgroup_of /proc/$VMM_PID/task/$VMM_PID) $(cgroup_of /proc/$VMM_PID/task/$io_tid)" "$p/b $p"
	info "C7: $p/cgroup.procs: '$(cat "$P/cgroup.procs" | tr '\n' ' ')' $p/a/cgroup.procs: '$(cat "$P/a/cgroup.procs" | tr '\n' ' ')' $p/a/cgroup.threads: '$(cat "$P/a/cgroup.threads" | tr '\n' ' ')' $p/b/cgroup.procs (main thread there): '$(cat "$P/b/cgroup.procs" | tr '\n' ' ')'"
	try_write "$P/a/cgroup.threads" "$$"
	expect_probe C8-foreign-tid-to-threads "a thread of another process outside P (the init shell) > $p/a/cgroup.threads" EOPNOTSUPP
	try_write "$P/a/cgroup.threads" 999999
	expect_probe C8-missing-tid "tid 999999 > $p/a/cgroup.threads" ESRCH
	try_write "$P/a/cgroup.procs" "$vcpu_tid"
	expect_probe C9-tid-to-threaded-procs "vCPU tid > $p/a/cgroup.procs (a: threaded)" ok
	all_in "$p/a" && got="all $((TP_V + TP_O)) threads" || got="not all:$TP_BAD"
	check kernel-C9-procs-moves-whole-process "threads moved to $p/a by writing one vCPU tid to its cgroup.procs" \
		"$got" "all $((VCPUS + OTHER_THREADS)) threads"
	try_rmdir "$P"
	expect_probe C10-rmdir-parent-first "rmdir $p with children" EBUSY
	try_rmdir "$P/a"
	expect_probe C10-rmdir-populated-child "rmdir $p/a holding threads" EBUSY
	try_write "$P/cgroup.procs" "$VMM_PID"
	expect_probe C11-pid-to-root-procs "VMM pid > $p/cgroup.procs (P: $(type_of "$P"))" ok
	all_in "$p" && got="all $((TP_V + TP_O)) threads" || got="not all:$TP_BAD"
	check kernel-C11-all-back "threads back in $p after one write to its cgroup.procs" "$got" "all $((VCPUS + OTHER_THREADS)) threads"
	try_write "$P/cgroup.subtree_control" "-cpu"
	expect_probe C12-subtree-disable-with-children "'-cpu' > $p/cgroup.subtree_control, threaded children still there" ok
	try_write "$P/cgroup.subtree_control" "+cpu"
	expect_probe C12-subtree-reenable "'+cpu' again" ok
	try_rmdir "$P/a"
	expect_probe C13-rmdir-empty-child "rmdir $p/a (empty)" ok
	check kernel-C13-type-one-child "$p/cgroup.type, one threaded child left" "$(type_of "$P")" "domain threaded"
	try_rmdir "$P/b"
	expect_probe C13-rmdir-empty-child-2 "rmdir $p/b (empty)" ok
	check kernel-C13-type-no-children "$p/cgroup.type, no children, holds tasks, subtree_control '$(first_line "$P/cgroup.subtree_control")'" \
		"$(type_of "$P")" "domain threaded"
	try_write "$P/cgroup.subtree_control" "-cpu -cpuset"
	expect_probe C14-subtree-clear "'-cpu -cpuset' > $p/cgroup.subtree_control, no children" ok
	check kernel-C14-type "$p/cgroup.type, cleared" "$(type_of "$P")" domain

	# D. The other order: controllers first, then the children made threaded (P holds the VMM).
	try_write "$P/cgroup.subtree_control" "+cpu +cpuset"
	expect_probe D1-subtree-first "'+cpu +cpuset' > $p/cgroup.subtree_control before any child" ok
	mkdir "$P/c"
	was=$(type_of "$P/c")
	try_write "$P/c/cgroup.type" threaded
	expect_probe D2-type-threaded-after-controllers "'threaded' > $p/c/cgroup.type (c was '$was')" ok
	try_write "$P/c/cgroup.threads" "$vcpu_tid"
	expect_probe D3-tid-to-threads "vCPU tid > $p/c/cgroup.threads" ok
	move_all_threads "$P/c" "$P"
	rmdir "$P/c"
	echo "-cpu -cpuset" > "$P/cgroup.subtree_control"
	check kernel-D4-type "$p/cgroup.type after" "$(type_of "$P")" domain

	# E. An empty P with a domain controller enabled (possible only without processes): no threaded child.
	stop_vmm
	try_write "$P/cgroup.subtree_control" "+memory"
	expect_probe E1-subtree-memory-empty "'+memory' > $p/cgroup.subtree_control, P empty" ok
	mkdir "$P/d"
	try_write "$P/d/cgroup.type" threaded
	expect_probe E2-type-threaded-under-memory "'threaded' > $p/d/cgroup.type, P has +memory in subtree_control" EOPNOTSUPP
	rmdir "$P/d"
	echo "-memory" > "$P/cgroup.subtree_control"
	try_rmdir "$P"
	check probes-cleanup "rmdir $p" "$TRY" ok
}

# ---------------------------------------------------------------------------------------------------------
main() {
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev 2>/dev/null
	mount -t tmpfs tmpfs /run
	mkdir -p "$CG"
	if ! mount -t cgroup2 cgroup2 "$CG"; then
		fail mount-cgroup2 "mount -t cgroup2 failed"
		return
	fi
	info "kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs, cmdline: $(cat /proc/cmdline)"
	info "root cgroup.controllers: $(first_line "$CG/cgroup.controllers")"
	v1=$(grep -c ' cgroup ' /proc/mounts)
	check pure-v2 "cgroup v1 mounts" "$v1" 0
	echo "+cpu +cpuset +memory +pids" > "$CG/cgroup.subtree_control"
	check root-subtree-control "root cgroup.subtree_control" "$(first_line "$CG/cgroup.subtree_control")" "cpuset cpu memory pids"

	if [ "$VMMCG_RUN" = hooks ]; then
		for h in create-runtime poststart poststop; do
			command -v "vmm-cgroup-$h" > /dev/null || fail hooks-present "vmm-cgroup-$h not in the initramfs"
		done
	fi
	[ "$VMMCG_PROBES" = 1 ] && run_probes
	for mode in $VMMCG_CASES; do run_case "$mode"; done
	info "$FAILED failed"
}

main 2>&1
echo VMMCG-DONE
sync
poweroff -f
echo o > /proc/sysrq-trigger
sleep 5
