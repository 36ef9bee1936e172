#!/bin/bash
# The node guest's test unit (vmmcg-node-test.service): drives the container lifecycle through the real
# podman, crun and runc with the hooks as installed, checks every thread of the VMM in
# /proc/<pid>/task/<tid>/cgroup, and prints on the serial console
#   VMMCG-RESULT PASS|FAIL <case>/<check>: <detail>    one per check; run_node.py knows which must come
#   VMMCG-EVIDENCE <case>: ...                         what a failing check found, in full
#   VMMCG-CASE-END <case> <seconds>s                   the case ran to its end
#   VMMCG-DONE                                         then the guest powers off
# With VERBOSE=1 every command, its exit status, time and output are printed too (VMMCG-CMD).
#
# S is the container's cgroup as podman and the runtime made it: with systemd, crun's is
# machine.slice/libpod-<id>.scope/container and runc's the scope itself. The hooks put the vCPU threads
# into S/vcpu (the container's CPU limit) and every other thread into S/overhead.
set -u
. /usr/local/lib/vmmcg-node/params # CASES, VERBOSE, JOBS, MAN_PAGES

CG=/sys/fs/cgroup
RECORDS=/run/vmm-cgroup-hooks
CONFIG=/etc/vmm-cgroup-hooks/config.json
CONFIG_TEXT=$(<"$CONFIG") # as run_node.py wrote it; a case may change it for its own run (without_watcher)
HOOK_EXES=/usr/libexec/vmm-cgroup-hooks
HOOKS_D=/usr/share/containers/oci/hooks.d
IMAGE=localhost/vmmcg-node-vmm
CPUS=1.5
LIMIT="150000 100000" # what --cpus 1.5 is in cpu.max
# The hooks' derived cap on S/overhead (overhead_cap_percent 25, overhead_cap_min_millicpus 250): a quarter
# of the container's 1.5 CPUs; after podman update --cpus 1 a quarter of 1 CPU, which is the floor 250m.
OVERHEAD_CAP="37500 100000"
UPDATED_LIMIT="100000 100000" UPDATED_OVERHEAD_CAP="25000 100000"
CTL=/usr/sbin/vmm-cgroupctl
VCPUS=4
IO_THREADS=2
# --no-kvm: a TCG guest has no /dev/kvm; the configuration's vcpu_proof "names" lets the thread names count.
VMM=(/bin/test-vmm --vcpus "$VCPUS" --io-threads "$IO_THREADS" --no-kvm)
# podman's bundle of a container (its StaticDir, vfs storage), which the runtime passes to the hooks
BUNDLES=/var/lib/containers/storage/vfs-containers
TRIGGER=/tmp/vmmcg-node-go # a launcher in the container waits for it (created through /proc/<pid>/root)

CASE=boot
RUNTIME=crun
MANAGER=systemd
ID= S= PID= SETTLER= REMOVED=1 INSTANCE= SCOPE=
LAST_ID_FILE=/run/vmmcg-node-last-id # the last container started, for the journal case
QUEUE=/run/vmmcg-node-queue          # the next case to run, for the workers
OUT= RC=0

# Helpers avoid forks where they poll: under TCG a fork and exec costs tens of milliseconds.
say() { printf '%s\n' "$*"; }
flat() { tr '\n' ' ' | sed 's/  */ /g; s/ $//'; }
short() { flat | cut -c1-"${1:-700}"; }
result() {
	local status=$1 check=$2
	shift 2
	say "VMMCG-RESULT $status $CASE/$check${1:+: $*}"
}
pass() { result PASS "$@"; }
fail() { result FAIL "$@"; }
# check NAME WHAT GOT EXPECTED
check() {
	if [ "$3" = "$4" ]; then pass "$1" "$2: '$3'"; else fail "$1" "$2: '$3', expected '$4'"; fi
}
info() { say "VMMCG-INFO $CASE: $*"; }
# data NAME: standard input to the host, base64 in lines "VMMCG-DATA <case> NAME <chunk>"; run_node.py
# joins them and checks the whole (the status JSON against its schema, the metrics with promtool).
data() { base64 -w 96 | sed "s|^|VMMCG-DATA $CASE $1 |"; }
evidence() { say "VMMCG-EVIDENCE $CASE: $*"; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
# s PATH: the path with S written as "S" (the ids are long)
s() { local p=$1; [ -n "$S" ] && p=${p//$S/S}; printf '%s' "$p"; }
# get FILE: its first line in REPLY ("" when unreadable), no fork.
get() { REPLY=; { IFS= read -r REPLY < "$1"; } 2>/dev/null; }

# cmd ARGS...: runs a command; output in OUT, status in RC.
cmd() {
	local start
	start=$(now_ms)
	OUT=$(timeout 120 "$@" 2>&1)
	RC=$?
	ELAPSED=$(($(now_ms) - start))
	[ "$VERBOSE" = 1 ] && say "VMMCG-CMD $CASE: $* -> $RC in $ELAPSED ms: $(printf '%s' "$OUT" | short 1500)"
	return $RC
}
# pm ARGS...: podman with the case's runtime and cgroup manager.
pm() { cmd podman --runtime "$RUNTIME" --cgroup-manager "$MANAGER" "$@"; }
# expect_ok CHECK WHAT: the last command's status.
expect_ok() {
	if [ "$RC" = 0 ]; then
		pass "$1" "$2"
	else
		fail "$1" "$2 exited $RC: $(printf '%s' "$OUT" | short)"
	fi
}

cpu_max() { get "$CG$1/cpu.max"; printf '%s' "${REPLY:-(no cpu.max)}"; }
cgroup_of() { get "$1/cgroup"; printf '%s' "${REPLY#0::}"; }
is_vcpu() { [[ $1 =~ ^CPU\ [0-9]+/KVM$ ]]; }
is_vmm() { get "/proc/$1/comm"; [ "$REPLY" = test-vmm ]; }
# state_of TASKDIR: the state letter in REPLY
state_of() { get "$1/stat"; REPLY=${REPLY##*) }; REPLY=${REPLY%% *}; }
# of_container PROCDIR: true when the hook process names the current container: a hook's working directory
# is the bundle (which names it), a settler's or watcher's command line has "--settler INSTANCE ID" (its
# working directory is /).
of_container() {
	local cwd cmdline
	cwd=$(readlink "$1/cwd")
	cmdline=$(tr '\0' ' ' < "$1/cmdline" 2>/dev/null)
	[[ $cwd == *"$ID"* ]] || [[ $cmdline == *" --settler $INSTANCE $ID "* ]]
}
# hook_processes [all]: running hook executables (a settler is one) of the current container, with their
# cgroup; with "all", of any container. Two cases run at a time, so a hook process is the container's when
# its pid is the settler its record names, or it names the container (of_container).
hook_processes() {
	local link
	note_settler
	for link in $(find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$HOOK_EXES/*" 2>/dev/null); do
		link=${link%/exe}
		if [ "${1:-}" != all ]; then
			[ "${link#/proc/}" = "$SETTLER" ] || of_container "$link" || continue
		fi
		say "$(readlink "$link/exe" | sed 's|.*/||') pid ${link#/proc/} (cgroup $(cgroup_of "$link"), cwd $(s "$(readlink "$link/cwd")"))"
	done
}
# instance_of ID: the hooks' name of the container (common/layout.cpp instance_name): the id, "-", and the
# FNV-1a 64 hash of its bundle path in 16 hex digits. It names the record, <RECORDS>/<instance>.json.
instance_of() {
	local b="$BUNDLES/$1/userdata" h=-3750763034362895579 i c # h: the FNV offset basis as a signed 64-bit
	for ((i = 0; i < ${#b}; i++)); do
		printf -v c '%d' "'${b:i:1}"
		h=$(((h ^ (c & 255)) * 1099511628211))
	done
	printf '%s-%016x' "$1" "$h"
}
# note_settler: SETTLER gets the pid the record names while there is a record.
note_settler() {
	get "$RECORDS/$INSTANCE.json"
	[[ $REPLY =~ \"settler\":\{\"pid\":([0-9]+) ]] && SETTLER=${BASH_REMATCH[1]}
}

# The threads of PID, one line each: tid, state, cgroup, name.
threads() {
	local t cg
	for t in /proc/"$PID"/task/*; do
		get "$t/cgroup" || continue
		cg=${REPLY#0::}
		state_of "$t"
		local st=$REPLY
		get "$t/comm"
		say "${t##*/} $st $(s "$cg") '$REPLY'"
	done
}

expected_s() {
	case $MANAGER/$RUNTIME in
	systemd/crun) echo "/machine.slice/libpod-$1.scope/container" ;;
	systemd/runc) echo "/machine.slice/libpod-$1.scope" ;;
	cgroupfs/crun) echo "/libpod_parent/libpod-$1" ;;
	cgroupfs/runc) echo "/libpod_parent/libpod-$1" ;;
	esac
}

# procs_of CGROUP: its processes as "pid (comm)".
procs_of() {
	local p out=
	for p in $(cat "$1/cgroup.procs" 2>/dev/null); do
		get "/proc/$p/comm"
		out+="$p ($REPLY) "
	done
	printf '%s' "${out% }"
}

# find_vmm: PID of the test VMM in S's subtree (S's cgroup.procs lists the processes of its threaded
# subtree), waiting up to 20 s.
find_vmm() {
	local deadline=$((EPOCHSECONDS + 20)) p procs
	PID=
	while :; do
		procs=$(<"$CG$S/cgroup.procs") 2>/dev/null
		for p in $procs; do
			if is_vmm "$p"; then
				PID=$p
				return 0
			fi
		done
		[ "$EPOCHSECONDS" -ge "$deadline" ] && return 1
		sleep 0.2
	done
}

# misplaced: PROBLEMS gets one entry per thread not where it belongs, and the counts when they are off.
misplaced() {
	local t name cg want vc=0 ot=0
	PROBLEMS=
	for t in /proc/"$PID"/task/*; do
		get "$t/comm" || continue
		name=$REPLY
		get "$t/cgroup"
		cg=${REPLY#0::}
		if is_vcpu "$name"; then
			want=$S/vcpu
			vc=$((vc + 1))
		else
			want=$S/overhead
			ot=$((ot + 1))
		fi
		[ "$cg" = "$want" ] || PROBLEMS+="tid ${t##*/} '$name' in $(s "$cg"), expected $(s "$want"); "
	done
	[ "$vc" = "$VCPUS" ] || PROBLEMS+="$vc vCPU threads, expected $VCPUS; "
	[ "$ot" = $((IO_THREADS + 1)) ] || PROBLEMS+="$ot other threads, expected $((IO_THREADS + 1)); "
}

# check_placement CHECK [SECONDS]: every thread in place, waiting up to SECONDS for it.
check_placement() {
	local deadline=$((EPOCHSECONDS + ${2:-0}))
	while :; do
		misplaced
		[ -z "$PROBLEMS" ] || [ "$EPOCHSECONDS" -ge "$deadline" ] && break
		sleep 0.2
	done
	if [ -z "$PROBLEMS" ]; then
		pass "$1" "thread by thread: $VCPUS vCPU threads in S/vcpu, $((IO_THREADS + 1)) others in S/overhead"
	else
		fail "$1" "${PROBLEMS% }"
		evidence "$1: threads (tid state cgroup name): $(threads | sed 's/$/;/' | flat)"
	fi
}

# limit_problems LIMIT: S/vcpu has the container's limit; S/overhead the hooks' derived cap (OVERHEAD_CAP,
# from the limit at createRuntime); S and S's ancestors cap nothing.
limit_problems() {
	local a
	PROBLEMS=
	get "$CG$S/vcpu/cpu.max"
	[ "$REPLY" = "$1" ] || PROBLEMS+="S/vcpu cpu.max '$REPLY', expected '$1'; "
	get "$CG$S/cpu.max"
	[ "${REPLY%% *}" = max ] || PROBLEMS+="S cpu.max '$REPLY', expected 'max ...': the overhead is capped with the vCPUs; "
	get "$CG$S/overhead/cpu.max"
	[ "$REPLY" = "$OVERHEAD_CAP" ] || PROBLEMS+="S/overhead cpu.max '$REPLY', expected the derived cap '$OVERHEAD_CAP'; "
	a=${S%/*}
	while [ -n "$a" ]; do
		get "$CG$a/cpu.max"
		[ "${REPLY%% *}" = max ] || PROBLEMS+="$a cpu.max '$REPLY' (an ancestor of S caps the overhead); "
		a=${a%/*}
	done
}
limits_text() { say "S '$(cpu_max "$S")', S/vcpu '$(cpu_max "$S/vcpu")', S/overhead '$(cpu_max "$S/overhead")'"; }
# check_limits CHECK [LIMIT] [SECONDS]
check_limits() {
	local limit=${2:-$LIMIT} deadline=$((EPOCHSECONDS + ${3:-0}))
	while :; do
		limit_problems "$limit"
		[ -z "$PROBLEMS" ] || [ "$EPOCHSECONDS" -ge "$deadline" ] && break
		sleep 0.2
	done
	if [ -z "$PROBLEMS" ]; then
		pass "$1" "cpu.max: $(limits_text)"
	else
		fail "$1" "${PROBLEMS% }"
	fi
}

# What of the project's is left for the current container, in PROBLEMS: its cgroups, its record, any hook
# process (a settler), the VMM; with "S" also S itself (after podman rm nothing of the container is left).
leftovers() {
	local p hooks
	PROBLEMS=
	[ -d "$CG$S/vcpu" ] && PROBLEMS+="S/vcpu is still there (threads: $(flat < "$CG$S/vcpu/cgroup.threads")); "
	[ -d "$CG$S/overhead" ] && PROBLEMS+="S/overhead is still there (threads: $(flat < "$CG$S/overhead/cgroup.threads")); "
	for p in "$RECORDS"/*"$ID"* "$RECORDS"/."$ID"*; do
		[ -e "$p" ] && PROBLEMS+="record $p is still there; "
	done
	hooks=$(hook_processes)
	[ -n "$hooks" ] && PROBLEMS+="still running: $(printf '%s' "$hooks" | sed 's/$/;/' | flat) "
	[ -n "$PID" ] && is_vmm "$PID" && PROBLEMS+="the VMM (pid $PID) is still running; "
	if [ "${1:-}" = S ] && [ -d "$CG$S" ]; then
		PROBLEMS+="S $S is still there (type $(cat "$CG$S/cgroup.type"), procs: $(flat < "$CG$S/cgroup.procs")); "
	fi
}
# check_left_nothing CHECK [S] [SECONDS]: SECONDS 20 unless told (poststop comes from podman's cleanup, seconds
# after the runtime's delete under TCG)
check_left_nothing() {
	local deadline=$((EPOCHSECONDS + ${3:-20}))
	while :; do
		leftovers "${2:-}"
		[ -z "$PROBLEMS" ] || [ "$EPOCHSECONDS" -ge "$deadline" ] && break
		sleep 0.3
	done
	if [ -z "$PROBLEMS" ]; then
		pass "$1" "no S/vcpu, S/overhead, record or hook process${2:+, and S is gone}"
	else
		fail "$1" "${PROBLEMS% }"
	fi
}

# start NAME [podman run options] [-- VMM command]: podman run -d with the annotation and --cpus; sets
# ID, S, PID. Reports run (and returns 1 when the container did not start).
start() {
	local opts=() vmm=("${VMM[@]}")
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		opts+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift && vmm=("$@")
	ID= S= PID= SETTLER= REMOVED=1 INSTANCE=
	pm run -d --name "vmmcg-node-$CASE" --network none --annotation io.vmm-cgroup-hooks.enable=true \
		--cpus "$CPUS" "${opts[@]}" "$IMAGE" "${vmm[@]}"
	ID=$(printf '%s' "$OUT" | tail -n1)
	INSTANCE=$(instance_of "$ID")
	if [ "$RC" != 0 ] || [[ ! $ID =~ ^[0-9a-f]{64}$ ]]; then
		fail run "podman --runtime $RUNTIME --cgroup-manager $MANAGER run --cpus $CPUS ${opts[*]} exited $RC: $(printf '%s' "$OUT" | short)"
		return 1
	fi
	REMOVED=0
	echo "$ID" > "$LAST_ID_FILE"
	S=$(expected_s "$ID")
	if [ ! -d "$CG$S" ]; then
		fail run "container ${ID:0:12} started, but S=$S does not exist; cgroups of the container: $(ls -d "$CG"/machine.slice/*"$ID"* "$CG"/libpod_parent/*"$ID"* 2>/dev/null | flat)"
		return 1
	fi
	if [ "${WAIT_VMM:-1}" = 1 ] && ! find_vmm; then
		fail run "container ${ID:0:12} started, but no test-vmm process in $S (procs: $(cat "$CG$S/cgroup.procs" 2>/dev/null | flat))"
		return 1
	fi
	pass run "podman run --cpus $CPUS ${opts[*]}: id ${ID:0:12}, S=$S, VMM pid ${PID:-not yet}"
}

# started: the checks every case makes after start.
started() {
	check_placement placement 20
	check_limits limits "$LIMIT" 5
}

# remove CHECK [podman rm options]: podman rm of the current container.
remove() {
	local check=$1
	shift
	pm rm "$@" "$ID"
	expect_ok "$check" "podman rm $*"
	[ "$RC" = 0 ] && REMOVED=1
}

# finish: a container a failed case left behind goes (not a check: the case's own checks said what failed),
# so that the next case starts clean.
finish() {
	if [ -n "$ID" ] && [ "$REMOVED" = 0 ]; then
		pm rm -f -t 0 "$ID" || info "cleanup: podman rm -f $ID exited $RC: $(printf '%s' "$OUT" | short 300)"
	fi
	if [ -n "$PID" ] && [ "$(cat /proc/"$PID"/comm 2>/dev/null)" = test-vmm ]; then
		info "cleanup: killing the VMM pid $PID left running"
		kill -9 "$PID"
	fi
	ID= S= PID= SETTLER= REMOVED=1 INSTANCE=
	[ "$(<"$CONFIG")" = "$CONFIG_TEXT" ] || printf '%s\n' "$CONFIG_TEXT" > "$CONFIG"
}

# without_watcher: the hooks' configuration with "watch_vmm": false until the case's finish; for cases that
# run alone (SERIAL), since every hook reads the one configuration.
without_watcher() {
	printf '%s\n' "${CONFIG_TEXT%\}}, \"watch_vmm\": false}" > "$CONFIG"
	info "configuration for this case: $(<"$CONFIG")"
}

wait_gone() { # PID SECONDS: the process is gone
	local deadline=$((EPOCHSECONDS + $2))
	while is_vmm "$1"; do
		[ "$EPOCHSECONDS" -ge "$deadline" ] && return 1
		sleep 0.2
	done
}

# ---------------------------------------------------------------------------------------------------------
# The cases

# podman run, placement, record, pause/unpause, podman stop, podman rm.
# podman run, placement, the record, podman pause/unpause (the whole VMM freezes and thaws, the
# placement is kept), podman stop, podman rm.
case_run() {
	start run || return
	started
	check_record
	check_settler_gone
	check_ctl
	pm pause "$ID"
	expect_ok pause "podman pause"
	check_frozen paused-frozen 1
	pm unpause "$ID"
	expect_ok unpause "podman unpause"
	check_frozen unpaused-thawed 0
	check_placement unpaused-placement
	pm stop -t 1 "$ID"
	expect_ok stop "podman stop -t 1"
	check_left_nothing stop-left-nothing
	remove rm
	check_left_nothing left-nothing S
	check_poststop_line
}

# hook_journal [FIELD=VALUE...]: the MESSAGE of the hooks' journal lines (journalctl -t vmm-cgroup-hooks)
# that have these fields (common/log.cpp writes CONTAINER_ID and VMMCG_STAGE).
hook_journal() { journalctl -b --no-pager -o cat -t vmm-cgroup-hooks "$@" 2>/dev/null; }

# poststop's one line at info says what it removed and what was removed already. podman runs poststop
# after the runtime deleted the container, and both runc and crun remove S with what is below it.
check_poststop_line() {
	local deadline=$((EPOCHSECONDS + 5)) lines
	while :; do
		lines=$(hook_journal CONTAINER_ID="$ID" VMMCG_STAGE=poststop | grep 'cleaned up')
		[ -n "$lines" ] || [ "$EPOCHSECONDS" -ge "$deadline" ] && break
		sleep 0.3
	done
	local want="poststop id=$ID: cleaned up: S/overhead and S/vcpu were removed already"
	if [ "$lines" = "$want" ]; then
		pass poststop-line "the journal's one poststop line: '${want/$ID/<id>}'"
	else
		fail poststop-line "poststop's lines with 'cleaned up': '$(printf '%s' "${lines//$ID/<id>}" | sed 's/$/;/' | flat)', expected the one '${want/$ID/<id>}'"
		evidence "poststop's lines: $(hook_journal CONTAINER_ID="$ID" VMMCG_STAGE=poststop | sed "s/$ID/<id>/; s/\$/;/" | short 1500)"
	fi
}

# check_record: the record <instance>.json of the container, version 2, with its instance name, bundle and
# phase "created".
check_record() {
	local r=$RECORDS/$INSTANCE.json bad=
	if [ ! -f "$r" ]; then
		fail record "no $r (there: $(ls -a "$RECORDS" 2>&1 | flat))"
		return
	fi
	get "$r"
	[[ $REPLY =~ \"version\":2[,}] ]] || bad+="no version 2; "
	[[ $REPLY == *"\"name\":\"$INSTANCE\""* ]] || bad+="no name $INSTANCE; "
	[[ $REPLY == *"\"bundle\":\"$BUNDLES/$ID/userdata\""* ]] || bad+="no bundle $BUNDLES/$ID/userdata; "
	[[ $REPLY == *'"phase":"created"'* ]] || bad+="not phase created; "
	if [ -z "$bad" ]; then pass record "$r: version 2, name, bundle, phase created"; else fail record "$r: ${bad% }: $(printf '%s' "$REPLY" | short 600)"; fi
}

# record_watcher: the pid of the watcher the container's record names, or nothing.
record_watcher() {
	sed -n 's/.*"watcher":{"pid":\([0-9]*\).*/\1/p' "$RECORDS/$INSTANCE.json" 2>/dev/null
}

# Once placed, one hook process is left: the VMM's watcher, which the record names (the settler that became
# it, under runc), in a scope of its own (not the engine's unit, whose stop would kill it).
check_settler_gone() {
	local deadline=$((EPOCHSECONDS + 10)) left watcher
	while :; do
		watcher=$(record_watcher)
		left=$(hook_processes | awk '{print $3}' | tr '\n' ' ')
		[ -n "$watcher" ] && [ "$left" = "$watcher " ] && break
		[ "$EPOCHSECONDS" -ge "$deadline" ] && break
		sleep 0.3
	done
	if [ -n "$watcher" ] && [ "$left" = "$watcher " ]; then
		pass only-watcher "the one hook process once placed is the record's watcher, pid $watcher, in $(cgroup_of /proc/"$watcher")"
	else
		fail only-watcher "10 s after placement, hook processes '$left', the record's watcher '$watcher': $(hook_processes | flat)"
	fi
}

# vmm-cgroupctl on the placed container: status says placement ok; its JSON and Prometheus text go to the
# host, which checks them (run_node.py: ctl-json, ctl-prometheus); reconcile puts back a vCPU thread moved
# to S/overhead by hand.
check_ctl() {
	cmd "$CTL" status "$ID"
	if [ "$RC" = 0 ] && [[ $OUT == *"placement ok"* ]]; then
		pass ctl-status "vmm-cgroupctl status ${ID:0:12}: placement ok"
	else
		fail ctl-status "vmm-cgroupctl status ${ID:0:12} exited $RC, without 'placement ok': $(printf '%s' "$OUT" | short 1500)"
	fi
	cmd "$CTL" status "$ID" --json
	expect_ok ctl-status-json "vmm-cgroupctl status --json"
	printf '%s' "$OUT" | data json
	cmd "$CTL" status "$ID" --prometheus
	expect_ok ctl-status-prometheus "vmm-cgroupctl status --prometheus"
	printf '%s\n' "$OUT" | data prometheus
	local t vcpu=
	for t in /proc/"$PID"/task/*; do
		get "$t/comm"
		is_vcpu "$REPLY" && vcpu=${t##*/} && break
	done
	echo "$vcpu" > "$CG$S/overhead/cgroup.threads"
	misplaced
	info "vCPU thread $vcpu moved to S/overhead by hand: ${PROBLEMS:-nothing misplaced}"
	cmd "$CTL" reconcile "$ID"
	if [ "$RC" = 0 ] && [[ $OUT == *"$vcpu"* ]]; then
		pass ctl-reconcile "vmm-cgroupctl reconcile moved the vCPU thread $vcpu back: $(printf '%s' "$OUT" | short 300)"
	else
		fail ctl-reconcile "vmm-cgroupctl reconcile exited $RC, naming no move of tid $vcpu: $(printf '%s' "$OUT" | short)"
	fi
	check_placement reconciled-placement
}

# freeze_problems WANT: S, S/vcpu and S/overhead report frozen WANT; when frozen, no thread runs.
freeze_problems() {
	local c f line t
	PROBLEMS=
	for c in "$S" "$S/vcpu" "$S/overhead"; do
		f=
		while read -r line; do [ "${line% *}" = frozen ] && f=${line#frozen }; done < "$CG$c/cgroup.events"
		get "$CG$c/cgroup.freeze"
		[ "$f" = "$1" ] || PROBLEMS+="$(s "$c") cgroup.events frozen '$f' (cgroup.freeze '$REPLY'); "
	done
	if [ "$1" = 1 ]; then
		for t in /proc/"$PID"/task/*; do
			state_of "$t"
			[ "$REPLY" = R ] && PROBLEMS+="tid ${t##*/} is running (R); "
		done
	fi
}
check_frozen() { # CHECK WANT
	local deadline=$((EPOCHSECONDS + 10))
	while :; do
		freeze_problems "$2"
		[ -z "$PROBLEMS" ] || [ "$EPOCHSECONDS" -ge "$deadline" ] && break
		sleep 0.2
	done
	local states
	states=$(threads | awk '{ print $2 }' | sort | uniq -c | awk '{ printf "%s %s, ", $1, $2 }')
	if [ -z "$PROBLEMS" ]; then
		pass "$1" "S, S/vcpu, S/overhead: frozen $2; thread states: ${states%, }"
	else
		fail "$1" "${PROBLEMS% }; thread states: ${states%, }"
	fi
}
# podman update --cpus 1 (an in-place resize): the vCPUs follow the new limit, the overhead stays out.
case_update() {
	start update || return
	started
	local before
	before=$(limits_text)
	pm update --cpus 1 "$ID"
	expect_ok update "podman update --cpus 1"
	# The watcher checks S's limit once a second: up to 3 s for it to move the new one to the vCPUs and to
	# derive the overhead's cap from it again.
	local i
	for i in $(seq 30); do
		[ "$(cpu_max "$S/vcpu")" = "$UPDATED_LIMIT" ] && [ "$(cpu_max "$S" | cut -d' ' -f1)" = max ] &&
			[ "$(cpu_max "$S/overhead")" = "$UPDATED_OVERHEAD_CAP" ] && break
		sleep 0.1
	done
	evidence "podman update --cpus 1: cpu.max before: $before; after: $(limits_text)"
	local v
	v=$(cpu_max "$S/vcpu")
	check update-vcpu-limit "S/vcpu cpu.max after podman update --cpus 1 (the vCPUs follow the new limit)" "$v" "$UPDATED_LIMIT"
	v=$(cpu_max "$S")
	if [ "${v%% *}" = max ]; then pass update-S-uncapped "S cpu.max '$v' after the update"; else fail update-S-uncapped "S cpu.max '$v' after the update, expected 'max ...': the overhead is capped again"; fi
	v=$(cpu_max "$S/overhead")
	check update-overhead-cap "S/overhead cpu.max after the update (25% of 1 CPU, at least 250m)" "$v" "$UPDATED_OVERHEAD_CAP"
	check_placement update-placement
	remove rm-f -f -t 0
	check_left_nothing left-nothing S
}

# systemd re-applies the scope's properties: the split must survive. With "watch_vmm": false, so that no
# watcher can put S back: S stays relaxed only if systemd's own view of the scope (its CPUQuota=) is
# infinity, which the hooks set through systemd (vmm-cgroup-systemd, SetUnitProperties) where systemd owns
# S's cpu.max (runc's S is the scope). Without that, daemon-reload writes the container's limit back on S.
case_reload() {
	without_watcher
	start reload || return
	started
	SCOPE=$(echo "$S" | grep -o 'libpod-[0-9a-f]*\.scope')
	check_no_watcher
	info "systemd's view of $SCOPE: $(systemctl show -p CPUQuotaPerSecUSec -p CPUWeight -p TasksMax -p Delegate "$SCOPE" | flat)"
	check_systemd_quota placed-systemd-quota "once placed"
	local before
	before=$(limits_text)
	cmd systemctl daemon-reload
	expect_ok daemon-reload "systemctl daemon-reload"
	sleep 2
	evidence "daemon-reload: cpu.max before: $before; after: $(limits_text)"
	check_systemd daemon-reload
	before=$(limits_text)
	cmd systemctl set-property --runtime "$SCOPE" TasksMax=4000
	expect_ok set-property "systemctl set-property --runtime $SCOPE TasksMax=4000"
	sleep 2
	evidence "set-property: cpu.max before: $before; after: $(limits_text)"
	check_systemd set-property
	remove rm-f -f -t 0
	check_left_nothing left-nothing S
}
check_systemd() { # PREFIX
	local v
	v=$(cpu_max "$S")
	if [ "${v%% *}" = max ]; then pass "$1-S-uncapped" "S cpu.max '$v'"; else fail "$1-S-uncapped" "S cpu.max '$v' after $1, expected 'max ...': systemd wrote the container's limit back on S, the overhead is capped with the vCPUs"; fi
	check_systemd_quota "$1-systemd-quota" "after $1"
	v=$(cpu_max "$S/vcpu")
	check "$1-vcpu-limit" "S/vcpu cpu.max after $1" "$v" "$LIMIT"
	check_placement "$1-placement"
}
# check_systemd_quota CHECK WHEN: systemd's own view of the scope's CPU quota is infinity (crun's scope never
# had one; runc's had the container's, which the hooks set to infinity through systemd).
check_systemd_quota() {
	local v
	v=$(systemctl show -p CPUQuotaPerSecUSec --value "$SCOPE")
	check "$1" "systemctl show -p CPUQuotaPerSecUSec $SCOPE $2" "$v" infinity
}
# With "watch_vmm": false the hook process that placed the VMM ends once it did: none is left, and the record
# names no watcher.
check_no_watcher() {
	local deadline=$((EPOCHSECONDS + 10)) left watcher
	while :; do
		watcher=$(record_watcher)
		left=$(hook_processes)
		[ -z "$watcher" ] && [ -z "$left" ] || [ "$EPOCHSECONDS" -ge "$deadline" ] && break
		sleep 0.3
	done
	if [ -z "$watcher" ] && [ -z "$left" ]; then
		pass no-watcher "with watch_vmm false, no hook process is left once placed, and the record names no watcher"
	else
		fail no-watcher "10 s after placement with watch_vmm false: the record's watcher '$watcher'; running: $(printf '%s' "$left" | flat)"
	fi
}

# A container in the host's pid namespace: stopping it is the runtime's kill of every process in its
# cgroup (runc kill --all), over S's threaded children.
# A container in the engine's pid namespace is not split on v2 (runc before 1.2 kills it by reading
# cgroup.procs of every child, which fails on threaded ones: opencontainers/runc#3821): every thread stays
# in S under the container's limit, and podman stop and rm work.
case_pidhost() {
	start pidhost --pid host || return
	local bad= t cg
	sleep 1
	for t in /proc/"$PID"/task/*; do
		cg=$(cgroup_of "$t")
		[ "$cg" = "$S" ] || bad+="tid ${t##*/} in $(s "$cg"); "
	done
	[ -e "$CG$S/vcpu" ] && bad+="S/vcpu exists; "
	get "$CG$S/cpu.max"
	[ "$REPLY" = "$LIMIT" ] || bad+="S cpu.max '$REPLY', expected '$LIMIT'; "
	if [ -z "$bad" ]; then pass not-split "every thread in S, no threaded children, S cpu.max '$LIMIT'"; else fail not-split "${bad% }"; fi
	pm stop -t 2 "$ID"
	expect_ok stop "podman stop -t 2 (--pid host)"
	[ "$RC" = 0 ] || evidence "podman stop of the --pid host container: $(printf '%s' "$OUT" | flat)"
	check_left_nothing stop-left-nothing
	remove rm
	evidence "podman rm of the --pid host container exited $RC: $(printf '%s' "$OUT" | flat)"
	check_left_nothing left-nothing S
}

case_kill() {
	start kill || return
	started
	pm kill "$ID"
	expect_ok kill "podman kill (SIGKILL)"
	if wait_gone "$PID" 15; then pass exited "the VMM (pid $PID) is gone"; else fail exited "the VMM (pid $PID) still runs 15 s after podman kill"; fi
	check_left_nothing kill-left-nothing "" 20
	remove rm
	check_left_nothing left-nothing S
}

# The VMM exits by itself: a launcher shell runs it, ends it when told (a file through /proc/<pid>/root)
# and exits after it; conmon's cleanup runs poststop.
case_exit() {
	start exit -- /bin/sh -c "${VMM[*]} & vmm=\$!; while [ ! -e $TRIGGER ]; do sleep 0.2; done; kill \$vmm; wait \$vmm" || return
	started
	local launcher
	launcher=$(cat /proc/"$PID"/status | sed -n 's/^PPid:\t//p')
	touch "/proc/$launcher/root$TRIGGER"
	if wait_gone "$PID" 15; then pass vmm-exited "the VMM (pid $PID) exited"; else fail vmm-exited "the VMM (pid $PID) still runs 15 s after it was told to exit"; fi
	local deadline=$((EPOCHSECONDS + 15))
	while [ -e /proc/"$launcher" ] && [ "$EPOCHSECONDS" -lt "$deadline" ]; do sleep 0.2; done
	if [ ! -e /proc/"$launcher" ]; then pass exited "the container's process (the launcher, pid $launcher) exited after the VMM"; else fail exited "the launcher (pid $launcher) still runs"; fi
	check_left_nothing exit-left-nothing "" 20
	remove rm
	check_left_nothing left-nothing S
}

case_cgroupfs() {
	MANAGER=cgroupfs
	start cgroupfs || return
	started
	pm stop -t 1 "$ID"
	expect_ok stop "podman --cgroup-manager cgroupfs stop -t 1"
	check_left_nothing stop-left-nothing
	remove rm
	check_left_nothing left-nothing S
}

# The hooks' lines in the journal under the identifier vmm-cgroup-hooks (journalctl -t).
case_journal() {
	local id
	get "$LAST_ID_FILE"
	id=$REPLY
	if [ -z "$id" ]; then
		start journal || return
		started
		remove rm-f -f -t 0
		check_left_nothing left-nothing S
	fi
	[ -z "$id" ] && id=$ID
	local n
	n=$(journalctl -b --no-pager -o cat -t vmm-cgroup-hooks 2>/dev/null | grep -c "$id")
	local found
	found=$(journalctl -b --no-pager -o json 2>/dev/null | grep -F "$id" | grep -o '"SYSLOG_IDENTIFIER":"[^"]*"' | sort | uniq -c | flat)
	if [ "$n" -gt 0 ]; then
		pass journal-identifier "$n lines of container ${id:0:12} under journalctl -t vmm-cgroup-hooks"
	else
		fail journal-identifier "journalctl -b -t vmm-cgroup-hooks has no line of container ${id:0:12}; its lines are under: ${found:-nothing}"
	fi
	# The fields the hooks write (common/log.cpp), which journalctl filters on.
	local stages
	n=$(hook_journal CONTAINER_ID="$id" | grep -c "id=$id: ")
	stages=$(journalctl -b --no-pager -o json -t vmm-cgroup-hooks CONTAINER_ID="$id" 2>/dev/null | grep -o '"VMMCG_STAGE":"[^"]*"' | sort | uniq -c | flat)
	if [ "$n" -gt 0 ]; then
		pass journal-container-id "$n lines under journalctl -t vmm-cgroup-hooks CONTAINER_ID=${id:0:12}...; stages: $stages"
	else
		fail journal-container-id "no line under journalctl -b -t vmm-cgroup-hooks CONTAINER_ID=$id"
	fi
	n=$(hook_journal CONTAINER_ID="$id" VMMCG_STAGE=poststop | grep -c "^poststop id=$id: ")
	if [ "$n" -gt 0 ]; then
		pass journal-stage "$n lines under CONTAINER_ID=${id:0:12}... VMMCG_STAGE=poststop: $(hook_journal CONTAINER_ID="$id" VMMCG_STAGE=poststop | sed "s/$id/<id>/; s/\$/;/" | short 400)"
	else
		fail journal-stage "no line under journalctl -b -t vmm-cgroup-hooks CONTAINER_ID=$id VMMCG_STAGE=poststop; stages: ${stages:-none}"
	fi
	evidence "journal lines of container ${id:0:12}: $(journalctl -b --no-pager -o short-monotonic 2>/dev/null | grep -F "$id" | grep -v ' podman\[\| systemd\[' | sed 's/$/;/' | short 2000)"
}

# The settler must not die with the unit that ran podman: podman runs from a transient unit; runc runs
# poststart before the container's process is exec'd, so the hook hands over to its settler, and the VMM
# comes only when told to (a launcher execs it). The unit is stopped before that.
case_settler_unit() {
	RUNTIME=runc
	local unit=vmmcg-node-caller.service settler= p exe
	ID= S= PID= REMOVED=1 INSTANCE=
	cmd systemd-run --quiet --unit "$unit" -p RemainAfterExit=yes -p TimeoutStopSec=5 podman --runtime runc run -d \
		--name vmmcg-node-settler-unit --network none --annotation io.vmm-cgroup-hooks.enable=true --cpus "$CPUS" \
		"$IMAGE" /bin/sh -c "while [ ! -e $TRIGGER ]; do sleep 0.2; done; exec ${VMM[*]}"
	local deadline=$((EPOCHSECONDS + 90))
	while [ "$(systemctl show -p SubState --value "$unit")" != exited ] && [ "$EPOCHSECONDS" -lt "$deadline" ]; do sleep 0.3; done
	local status
	status=$(systemctl show -p ExecMainStatus --value "$unit")
	ID=$(journalctl -b --no-pager -o cat -u "$unit" | grep -E '^[0-9a-f]{64}$' | tail -n1)
	if [ "$status" != 0 ] || [ -z "$ID" ]; then
		fail run "podman run in $unit: exit status '$status', id '$ID': $(journalctl -b --no-pager -o cat -u "$unit" | short)"
		cmd systemctl stop "$unit"
		return
	fi
	REMOVED=0
	INSTANCE=$(instance_of "$ID")
	echo "$ID" > "$LAST_ID_FILE"
	S=$(expected_s "$ID")
	pass run "podman --runtime runc run in $unit: id ${ID:0:12}, S=$S"
	note_settler
	settler=$SETTLER
	if [ -z "$settler" ]; then
		for p in $(find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$HOOK_EXES/vmm-cgroup-poststart" 2>/dev/null); do
			p=${p%/exe}
			of_container "$p" && settler=${p#/proc/}
		done
	fi
	if [ -n "$settler" ]; then
		pass settler-running "settler pid $settler, in $(cgroup_of /proc/"$settler") (the caller's unit)"
	else
		fail settler-running "no poststart settler is running after podman run returned (runc runs poststart before exec: the VMM is not there yet)"
	fi
	local conmon
	conmon=$(pgrep -f "conmon.*$ID" | head -n1)
	info "conmon pid ${conmon:-none} in $( [ -n "$conmon" ] && cgroup_of /proc/"$conmon")"
	local ucg=$CG/system.slice/$unit before after
	before=$(procs_of "$ucg")
	cmd systemctl stop --no-block "$unit"
	sleep 2
	after=$(procs_of "$ucg")
	# Stopped is inactive, or failed when something in it needed the SIGKILL after TimeoutStopSec (conmon).
	local state
	deadline=$((EPOCHSECONDS + 20))
	while :; do
		state=$(systemctl show -p ActiveState --value "$unit")
		[ "$state" = inactive ] || [ "$state" = failed ] || [ "$EPOCHSECONDS" -ge "$deadline" ] && break
		sleep 0.3
	done
	if [ "$state" = inactive ] || [ "$state" = failed ]; then
		pass unit-stop "systemctl stop $unit before the VMM has vCPUs: $state ($(systemctl show -p Result --value "$unit"))"
	else
		fail unit-stop "systemctl stop $unit: still $state 20 s later"
	fi
	evidence "$unit before the stop: ${before:-nothing}; 2 s after SIGTERM: ${after:-nothing}"
	systemctl reset-failed "$unit" 2>/dev/null
	if [ -n "$settler" ]; then
		sleep 1
		if [ "$(readlink /proc/"$settler"/exe 2>/dev/null)" = "$HOOK_EXES/vmm-cgroup-poststart" ]; then
			pass settler-survives "settler pid $settler still runs after systemctl stop $unit (now in $(cgroup_of /proc/"$settler"))"
		else
			fail settler-survives "settler pid $settler is gone after systemctl stop $unit: systemd killed it with the unit"
		fi
	else
		fail settler-survives "there was no settler to survive"
	fi
	local launcher
	launcher=$(cat "$CG$S/cgroup.procs" 2>/dev/null | head -n1)
	if [ -z "$launcher" ]; then
		fail placement "the container's process is not in S=$S (procs: none)"
	else
		touch "/proc/$launcher/root$TRIGGER"
		find_vmm
		check_placement placement 10
		# S is relaxed through systemd (the helper, D-Bus) by a settler at idle priority: seconds under TCG.
		check_limits limits "$LIMIT" 10
	fi
	remove rm-f -f -t 0
	# With conmon gone no poststop comes: the watcher cleans up once S has been gone for 10 s (poststop's
	# grace), up to a second late at idle priority.
	check_left_nothing left-nothing S 30
	evidence "poststop's journal lines of ${ID:0:12}: $(journalctl -b --no-pager -o cat 2>/dev/null | grep -F "$ID" | grep -i poststop | grep -v 'settler' | sed 's/$/;/' | short 600)"
}

# ---------------------------------------------------------------------------------------------------------

boot_checks() {
	local v1 cm
	v1=$(grep -c ' cgroup ' /proc/mounts)
	cm=$(stat -f -c %T "$CG")
	if [ "$v1" = 0 ] && [ "$cm" = cgroup2fs ] && grep -q 'systemd.unified_cgroup_hierarchy=1' /proc/cmdline && grep -q 'cgroup_no_v1=all' /proc/cmdline; then
		pass pure-v2 "$CG is cgroup2, no v1 mount; controllers: $(cat "$CG/cgroup.controllers")"
	else
		fail pure-v2 "$CG is $cm, $v1 cgroup v1 mounts; cmdline: $(cat /proc/cmdline)"
	fi
	local files
	files=$(ls "$HOOKS_D" 2>/dev/null | flat)
	if [ "$(ls "$HOOKS_D"/*.json 2>/dev/null | wc -l)" = 3 ] && [ -x "$HOOK_EXES/vmm-cgroup-create-runtime" ] && [ -f /etc/vmm-cgroup-hooks/config.json ]; then
		pass hooks-installed "$HOOKS_D: $files; $(ls "$HOOK_EXES" | flat); config $(cat /etc/vmm-cgroup-hooks/config.json)"
	else
		fail hooks-installed "$HOOKS_D: '$files'; $HOOK_EXES: '$(ls "$HOOK_EXES" 2>&1 | flat)'"
	fi
	local page missing=
	for page in $MAN_PAGES; do
		[ -f "/usr/share/man/man8/$page" ] || missing+="$page "
	done
	if [ -z "$MAN_PAGES" ]; then
		pass man-pages "no man pages were built (no scdoc on the build host): none to find"
	elif [ -z "$missing" ]; then
		pass man-pages "installed in /usr/share/man/man8: $MAN_PAGES"
	else
		fail man-pages "built but not in /usr/share/man/man8: ${missing% } (there: $(ls /usr/share/man/man8 2>&1 | grep vmm | flat))"
	fi
	info "$(uname -r), $(nproc) CPUs; $(podman --version); $(crun --version | head -n1); $(runc --version | head -n1); $(systemctl --version | head -n1); conmon $(conmon --version | head -n1)"
	cmd podman import --quiet /usr/local/lib/vmmcg-node/vmm-image.tar "$IMAGE"
	expect_ok image "podman import of busybox-static and test-vmm as $IMAGE (${ELAPSED} ms)"
}

run_case() {
	local c=$1 start=$EPOCHSECONDS
	CASE=$c
	MANAGER=systemd
	case $c in
	crun-* | runc-*)
		RUNTIME=${c%%-*}
		"case_${c#*-}"
		;;
	settler-unit) case_settler_unit ;;
	*) "case_$c" ;;
	esac
	finish
	say "VMMCG-CASE-END $c $((EPOCHSECONDS - start))s"
}

# worker: runs the cases of the queue one after the other, taking the next under a lock.
worker() {
	local n c
	while :; do
		n=$(flock "$QUEUE" sh -c 'n=$(cat "$1"); echo $((n + 1)) > "$1"; echo "$n"' sh "$QUEUE")
		[ "$n" -lt "${#PARALLEL[@]}" ] || return 0
		run_case "${PARALLEL[$n]}"
	done
}

# Nothing of any container is left once every case ran.
end_checks() {
	CASE=end
	local left=
	left+=$(hook_processes all | sed 's/$/; /')
	left+=$(ls -A "$RECORDS" 2>/dev/null | sed "s|^|record $RECORDS/|; s/$/; /")
	left+=$(find "$CG" -mindepth 2 -type d \( -name vcpu -o -name overhead \) 2>/dev/null | sed 's/$/ is still there; /')
	left+=$(pgrep -x test-vmm | sed 's/^/a test-vmm is still running: pid /; s/$/; /')
	if [ -z "$left" ]; then pass nothing-left "no hook process, record, vcpu or overhead cgroup, or VMM of any case"; else fail nothing-left "$(printf '%s' "$left" | flat)"; fi
	# The settler and watcher each moved into a transient vmm-cgroup-hooks-<instance>.scope: systemd removes
	# it once its process has ended. The slice they were in stays (an empty slice is not stopped); systemd
	# makes its name's parents too (vmm.slice/vmm-cgroup.slice/vmm-cgroup-hooks.slice).
	local deadline=$((EPOCHSECONDS + 10)) scopes
	while :; do
		scopes=$(systemctl list-units --all --no-legend --plain 'vmm-cgroup-hooks-*.scope' | flat)
		[ -z "$scopes" ] || [ "$EPOCHSECONDS" -ge "$deadline" ] && break
		sleep 0.5
	done
	if [ -z "$scopes" ]; then pass no-hooks-scope "no vmm-cgroup-hooks-*.scope unit is left"; else fail no-hooks-scope "units left: $scopes"; fi
	info "vmm-cgroup-hooks.slice: $(systemctl show -p ActiveState -p ControlGroup vmm-cgroup-hooks.slice | flat), tasks: $(systemctl show -p TasksCurrent --value vmm-cgroup-hooks.slice)"
}

# Cases run JOBS at a time (2: the guest's two vCPUs are both busy, the waits overlap), except those that act
# on systemd as a whole: daemon-reload re-applies every unit, and would break the other case's containers.
SERIAL=" crun-reload runc-reload journal "

main() {
	say "VMMCG-BOOTED $(cut -d' ' -f1 /proc/uptime)"
	boot_checks
	local c serial=()
	PARALLEL=()
	for c in $CASES; do
		if [[ $SERIAL == *" $c "* ]]; then serial+=("$c"); else PARALLEL+=("$c"); fi
	done
	echo 0 > "$QUEUE"
	local i workers=()
	for ((i = 0; i < JOBS; i++)); do
		worker &
		workers+=($!)
	done
	wait "${workers[@]}"
	for c in "${serial[@]}"; do run_case "$c"; done
	end_checks
}

main 2>&1
say VMMCG-DONE
systemctl poweroff --force --force
