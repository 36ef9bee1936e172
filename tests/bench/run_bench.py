#!/usr/bin/env python3
"""Benchmark of the hooks against the floor and the cgroup-tools peer, on this host's real cgroupfs.

For each vCPU count, each run starts a fresh test VMM (vCPU threads named "CPU <n>/KVM", plus I/O
threads) in a fresh sandbox cgroup, as a runtime would, and then drives one implementation through the
three stages: createRuntime, poststart (VMM running, all threads up), poststop (VMM gone, as when a
runtime runs it). Every stage is one process with the OCI state on its standard input, started and reaped
by a small static launcher (spawn.c): its wall time is posix_spawn to wait4, its peak memory wait4's
ru_maxrss. After
poststart, the placement of every thread is checked in every hierarchy, for all three implementations, so
that only correct work is timed; after poststop, that nothing is left.

  hooks  the built vmm-cgroup-create-runtime / -poststart / -poststop, with --gate=runtime (as the runtime
         wrapper adds them) and the default configuration except the record directory and vmm_names: O
         beside S (<parent of S>/vmm-overhead-<instance>) in cpu and cpuset, vCPUs proven by their KVM
         vCPU fds (the test VMM holds real ones; --no-kvm: none, and vcpu_proof "names");
  floor  bench/floor.c, static: only the syscalls a stage cannot avoid, for the same layout;
  peer   bench/peer.sh: cgcreate, cgset, cgclassify and cgdelete from cgroup-tools, the same layout.

Runs interleave the implementations, so drift on a shared machine falls on all three alike. Needs root,
cgroup v1 hierarchies for cpu, cpuacct and cpuset (the sandbox is made in all three, as a runtime makes it;
O in cpu and cpuset, the hooks' default overhead_controllers: this project's split layout on a v1 or hybrid
host), and /dev/kvm unless --no-kvm. Everything is named vmmcg-bench-<pid> and removed at the end, also on
failure or Ctrl-C.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

CONTROLLERS = ("cpu", "cpuacct", "cpuset")  # where the sandbox S is made, as a runtime makes it
OVERHEAD_CONTROLLERS = ("cpu", "cpuset")  # where O is made and the VMM split: the hooks' default
GATE = "--gate=runtime"  # the runtime wrapper's argument: what enables the hooks by default
STAGES = ("createRuntime", "poststart", "poststop")
IMPLS = ("hooks", "floor", "peer")
VCPU_NAME = re.compile(r"CPU \d+/KVM")
QUIET_S = 0.13  # the hooks' default settle_quiet_ms, plus a clock tick and margin


class BenchError(Exception):
    pass


def v1_mounts():
    """Controller -> mount point of the v1 hierarchies that carry it, from /proc/self/mountinfo."""
    mounts = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fstype, _source, options = right.split()[:3]
            if fstype != "cgroup":
                continue
            point = left.split()[4]
            for option in options.split(","):
                if option in CONTROLLERS:
                    mounts[option] = point
    missing = [c for c in CONTROLLERS if c not in mounts]
    if missing:
        raise BenchError(f"no cgroup v1 hierarchy for {', '.join(missing)}: the benchmark measures the "
                         "split layout of a v1 or hybrid host")
    return mounts


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def instance_name(cid, bundle):
    """The hooks' name of a container instance (common/layout.cpp): the id and the FNV-1a 64 hash of the
    bundle path, 16 hex digits. The record is <record_dir>/<instance>.json, O <parent of S>/vmm-overhead-<it>."""
    h = 0xcbf29ce484222325
    for byte in bundle.encode():
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{cid}-{h:016x}"


def percentile(values, fraction):
    ordered = sorted(values)
    index = fraction * (len(ordered) - 1)
    low = int(index)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


class Bench:
    def __init__(self, args):
        self.args = args
        build = os.path.abspath(args.build_dir)
        here = os.path.dirname(os.path.abspath(__file__))
        self.hooks = {stage: os.path.join(build, "hooks", name) for stage, name in
                      zip(STAGES, ("vmm-cgroup-create-runtime", "vmm-cgroup-poststart", "vmm-cgroup-poststop"))}
        self.floor = os.path.join(build, "tests", "bench", "vmmcg-bench-floor")
        self.spawn = os.path.join(build, "tests", "bench", "vmmcg-bench-spawn")
        self.peer = os.path.join(here, "peer.sh")
        self.test_vmm = os.path.join(build, "tests", "test-vmm")
        for path in [*self.hooks.values(), self.floor, self.spawn, self.test_vmm]:
            if not os.access(path, os.X_OK):
                raise BenchError(f"{path}: not built (ninja -C {args.build_dir})")
        for tool in ("cgcreate", "cgset", "cgget", "cgclassify", "cgdelete", "strip"):
            if not shutil.which(tool):
                raise BenchError(f"{tool} not found: apt-get install cgroup-tools binutils")
        self.mounts = v1_mounts()
        self.prefix = f"vmmcg-bench-{os.getpid()}"
        self.parent = "/" + self.prefix                 # the sandboxes' parent (a pod's), where O goes too
        self.run_dir = f"/run/{self.prefix}"             # tmpfs, as /run/vmm-cgroup-hooks is
        self.vmms = set()                                # pids of the test VMMs started and not reaped
        self.stderr_path = os.path.join(self.run_dir, "stderr")
        self.mounted = False

    # --- setup and cleanup -------------------------------------------------------------------------------

    def setup(self):
        os.makedirs(self.run_dir, mode=0o700)
        # /run is a tmpfs on a node, as it is not on every build machine (here: ext4, where creating and
        # unlinking the record cost a journal write): the records go to one, mounted by the benchmark.
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700,size=64m", self.prefix, self.run_dir], check=True)
        self.mounted = True
        os.makedirs(os.path.join(self.run_dir, "bundle"))
        # Stripped copies, as installed binaries are (meson install --strip, dh_strip): the debug info of a
        # debugoptimized build costs each start some 20 page faults.
        # (Not for a profile, which needs the symbols.)
        bin_dir = os.path.join(self.run_dir, "bin")
        os.makedirs(bin_dir)
        for name, path in [] if self.args.callgrind else [*self.hooks.items(), ("floor", self.floor)]:
            stripped = os.path.join(bin_dir, os.path.basename(path))
            subprocess.run(["strip", "-o", stripped, path], check=True)
            if name == "floor":
                self.floor = stripped
            else:
                self.hooks[name] = stripped
        self.config = os.path.join(self.run_dir, "config.json")
        keys = {"record_dir": os.path.join(self.run_dir, "records"), "vmm_names": ["test-vmm"]}
        if self.args.no_kvm:
            keys["vcpu_proof"] = "names"  # the stand-in holds no KVM vCPU fds
        write(self.config, json.dumps({**keys, **json.loads(self.args.config_json)}))
        for controller in CONTROLLERS:
            self.make_cgroup(controller, self.parent)

    def cgroup_dir(self, controller, path):
        return self.mounts[controller] + path

    def make_cgroup(self, controller, path):
        directory = self.cgroup_dir(controller, path)
        os.mkdir(directory)
        if controller == "cpuset":
            parent = os.path.dirname(directory)
            for name in ("cpuset.cpus", "cpuset.mems"):
                write(os.path.join(directory, name), read(os.path.join(parent, name)))

    def remove_cgroup_tree(self, controller, path):
        top = self.cgroup_dir(controller, path)
        if not os.path.isdir(top):
            return
        for directory, _subdirs, _files in sorted(os.walk(top), key=lambda entry: -len(entry[0])):
            for attempt in range(100):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)  # a task just killed is still leaving

    def cleanup(self):
        for pid in list(self.vmms):
            self.stop_vmm(pid)
        for controller in CONTROLLERS:
            self.remove_cgroup_tree(controller, self.parent)
        if self.mounted:
            # Busy while a hook process runs from bin/: poststop SIGKILLs the watcher of an ended VMM
            # and does not wait for its exit.
            for attempt in range(100):
                if subprocess.run(["umount", self.run_dir], capture_output=True).returncode == 0:
                    break
                time.sleep(0.01)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        left = [self.cgroup_dir(c, self.parent) for c in CONTROLLERS
                if os.path.exists(self.cgroup_dir(c, self.parent))]
        if os.path.ismount(self.run_dir):
            left.append(f"the tmpfs mounted on {self.run_dir}")
        if left:
            print(f"warning: could not remove {', '.join(left)}", file=sys.stderr)

    # --- the VMM -----------------------------------------------------------------------------------------

    def start_vmm(self, sandbox, vcpus):
        ready = os.path.join(self.run_dir, "ready")
        if os.path.exists(ready):
            os.unlink(ready)
        procs = [os.path.join(self.cgroup_dir(c, sandbox), "cgroup.procs") for c in CONTROLLERS]
        pid = os.fork()
        if pid == 0:  # the child joins the sandbox before exec, as a runtime's init does
            try:
                for path in procs:
                    write(path, "0")
                os.execv(self.test_vmm, [self.test_vmm, "--vcpus", str(vcpus), "--io-threads",
                                         str(self.args.io_threads), "--ready-file", ready,
                                         *(["--no-kvm"] if self.args.no_kvm else [])])
            finally:
                os._exit(127)
        self.vmms.add(pid)
        deadline = time.monotonic() + 10
        while not os.path.exists(ready):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                self.vmms.discard(pid)
                code = os.waitstatus_to_exitcode(status)
                raise BenchError(f"test VMM exited {code}" + (" (no usable /dev/kvm: --no-kvm runs the stand-in "
                                 "without KVM fds and the hooks with vcpu_proof \"names\")" if code == 3 else ""))
            if time.monotonic() > deadline:
                raise BenchError(f"test VMM pid {pid} did not become ready")
            time.sleep(0.001)
        # A running VMM, as the benchmark measures: its threads created more than the hooks' settle_quiet_ms
        # (100 ms) ago. poststart on a younger VMM waits until then, by design; that wait is not cost.
        time.sleep(QUIET_S)
        return pid

    def stop_vmm(self, pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        self.vmms.discard(pid)

    # --- one timed process -------------------------------------------------------------------------------

    def timed(self, argv, state):
        """Wall time (ns), peak RSS (KiB) and CPU time (ns) of argv with `state` on stdin, from the launcher."""
        data = json.dumps(state).encode()
        state_read, state_write = os.pipe()
        os.write(state_write, data)  # a state is far below a pipe's capacity
        os.close(state_write)
        result_read, result_write = os.pipe()
        err = os.open(self.stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        actions = [(os.POSIX_SPAWN_DUP2, state_read, 0), (os.POSIX_SPAWN_DUP2, result_write, 1),
                   (os.POSIX_SPAWN_DUP2, err, 2)]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        launcher = os.posix_spawn(self.spawn, [self.spawn, *argv], env, file_actions=actions)
        for fd in (state_read, result_write, err):
            os.close(fd)
        with os.fdopen(result_read) as f:
            result = f.read().split()
        _, launcher_status = os.waitpid(launcher, 0)
        if os.waitstatus_to_exitcode(launcher_status) != 0 or len(result) != 4:
            raise BenchError(f"{self.spawn} failed:\n{read(self.stderr_path)}")
        ns, rss, status, cpu = (int(x) for x in result)
        if os.waitstatus_to_exitcode(status) != 0:
            raise BenchError(f"{' '.join(argv)} exited {os.waitstatus_to_exitcode(status)}:\n"
                             f"{read(self.stderr_path)}")
        return ns, rss, cpu

    def argv(self, impl, stage, sandbox, name, pid):
        if impl == "hooks":
            hook = [self.hooks[stage], "--config", self.config, GATE]
            if getattr(self.args, "strace", None):  # the hook's own system calls only: -f would wait for the watcher
                out = os.path.join(self.args.strace, f"strace.{stage}")
                return [shutil.which("strace"), "-C", "-w", "-S", "time", "-T", "-o", out, *hook]
            if not self.args.callgrind:
                return hook
            out = os.path.join(self.args.callgrind, f"callgrind.{stage}")
            return [shutil.which("valgrind"), "--tool=callgrind", "--quiet", f"--callgrind-out-file={out}", *hook]
        mounts = [self.mounts[c] for c in OVERHEAD_CONTROLLERS]
        floor_stage = {"createRuntime": "create", "poststart": "place", "poststop": "teardown"}[stage]
        if impl == "floor":
            return [self.floor, floor_stage, *mounts]
        args = [floor_stage, sandbox, ",".join(OVERHEAD_CONTROLLERS), name]
        return ["/bin/bash", self.peer, *args, *([str(pid)] if stage == "poststart" else [])]

    def warm_migration(self, pid, sandbox):
        """Writes the VMM's pid to the cgroup.procs it is already in, as a runtime writes its container's.

        Every migration takes the kernel's global cgroup_threadgroup_rwsem for writing; the first one after
        an idle spell waits for an RCU grace period (11-15 ms here), later ones within a grace period do
        not. "cold" leaves that wait to the stage (a VMM whose threads are 130 ms old: what a node sees
        when nothing else moved a task lately), "warm" takes it here, so that the stage's figure is the
        implementation's own cost, which the targets compare."""
        write(os.path.join(self.cgroup_dir("cpu", sandbox), "cgroup.procs"), str(pid))

    # --- checks ------------------------------------------------------------------------------------------

    def check_placement(self, impl, pid, sandbox, overhead, vcpus):
        task_dir = f"/proc/{pid}/task"
        seen_vcpus = 0
        for tid in os.listdir(task_dir):
            name = read(f"{task_dir}/{tid}/comm").strip()
            where = {}
            for line in read(f"{task_dir}/{tid}/cgroup").splitlines():
                _, names, path = line.split(":", 2)
                for controller in names.split(","):
                    where[controller] = path
            is_vcpu = bool(VCPU_NAME.fullmatch(name))
            seen_vcpus += is_vcpu
            for controller in CONTROLLERS:
                want = overhead if controller in OVERHEAD_CONTROLLERS and not is_vcpu else sandbox
                if where.get(controller) != want:
                    raise BenchError(f"{impl}: thread {tid} ({name}) is in {controller}:"
                                     f"{where.get(controller)}, expected {want}")
        if seen_vcpus != vcpus:
            raise BenchError(f"{impl}: {seen_vcpus} vCPU threads, expected {vcpus}")

    def check_gone(self, impl, overhead):
        for controller in CONTROLLERS:  # cpuacct: never made
            if os.path.exists(self.cgroup_dir(controller, overhead)):
                raise BenchError(f"{impl}: {controller}:{overhead} left after poststop")

    # --- a run -------------------------------------------------------------------------------------------

    def run_once(self, impl, vcpus, run):
        name = f"{impl}-{vcpus}-{run}"
        cid = f"{self.prefix}-{name}"
        sandbox = f"{self.parent}/{name}"
        bundle = os.path.join(self.run_dir, "bundle")
        instance = instance_name(cid, bundle)
        overhead = f"{self.parent}/vmm-overhead-{instance}"  # beside S, as the hooks put it by default
        for controller in CONTROLLERS:
            self.make_cgroup(controller, sandbox)
        # No enable annotation: --gate=runtime enables the hooks, as the runtime wrapper adds them.
        write(os.path.join(bundle, "config.json"), json.dumps({
            "ociVersion": "1.0.2",
            "process": {"args": ["test-vmm"]},
            "linux": {"cgroupsPath": sandbox}}))
        state = {"ociVersion": "1.0.2", "id": cid, "bundle": bundle, "annotations": {}}
        figures = {}
        pid = self.start_vmm(sandbox, vcpus)
        argv = lambda stage: self.argv(impl, stage, sandbox, f"vmm-overhead-{instance}", pid)  # noqa: E731
        try:
            figures["createRuntime"] = self.timed(argv("createRuntime"), {**state, "status": "created", "pid": pid})
            if self.args.kernel == "warm":
                self.warm_migration(pid, sandbox)
            figures["poststart"] = self.timed(argv("poststart"), {**state, "status": "running", "pid": pid})
            try:
                self.check_placement(impl, pid, sandbox, overhead, vcpus)
            except BenchError as e:
                raise BenchError(f"{e}\n{impl} poststart said:\n{read(self.stderr_path)}") from None
            if impl == "hooks":
                record = json.loads(read(os.path.join(self.run_dir, "records", instance + ".json")))
                if record.get("settler"):
                    raise BenchError("hooks: poststart handed over to a settler on a settled VMM")
        finally:
            self.stop_vmm(pid)
        figures["poststop"] = self.timed(argv("poststop"), {**state, "status": "stopped"})
        self.check_gone(impl, overhead)
        for controller in CONTROLLERS:
            os.rmdir(self.cgroup_dir(controller, sandbox))
        return figures

    def run(self):
        results = {}  # (impl, vcpus, stage) -> [(ns, kib)]
        for vcpus in self.args.vcpus:
            for run in range(self.args.warmup + self.args.runs):
                for impl in IMPLS:
                    figures = self.run_once(impl, vcpus, run)
                    if run < self.args.warmup:
                        continue
                    for stage, figure in figures.items():
                        results.setdefault((impl, vcpus, stage), []).append(figure)
            print(f"  {vcpus} vCPUs: {self.args.runs} runs done", file=sys.stderr, flush=True)
        return results


def profile(bench, args):
    """One run of the hooks under callgrind: instructions per stage and where they go (inclusive)."""
    os.makedirs(args.callgrind, exist_ok=True)
    bench.run_once("hooks", 8, 0)
    wanted = re.compile(r"vmmcg::|_dl_start|below main|spdlog::|nlohmann::")
    for stage in STAGES:
        out = os.path.join(args.callgrind, f"callgrind.{stage}")
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes", out], capture_output=True, text=True,
                              check=True).stdout
        total = re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", text).group(1)
        print(f"\n{stage}: {total} instructions, inclusive ({out})")
        seen = set()
        for line in text.splitlines():
            match = re.match(r"\s*([\d,]+) \(\s*([\d.]+)%\)\s+[^:]*:(.*?)(?: \[[^]]*\])?$", line)
            if not match or not wanted.search(match.group(3)):
                continue
            name = short_name(match.group(3))
            if name in seen or float(match.group(2)) > 99.9:
                continue
            seen.add(name)
            print(f"  {match.group(1):>10} {match.group(2):>5}%  {name}")
            if len(seen) == 10:
                break


def syscall_profile(bench, args):
    """One run of the hooks under strace -c -w: per stage, the system calls that take its wall time."""
    os.makedirs(args.strace, exist_ok=True)
    bench.run_once("hooks", args.vcpus[0], 0)
    for stage in STAGES:
        out = os.path.join(args.strace, f"strace.{stage}")
        text = read(out).splitlines()
        at = next(i for i, line in enumerate(text) if line.startswith("% time"))
        calls, summary = text[:at], text[at:]
        print(f"\n{stage} ({out}, wall time in each call, strace's own cost included):")
        print("\n".join("  " + line for line in summary[:14]))
        if len(summary) > 14:
            print("  " + summary[-1])
        took = lambda line: float(re.search(r"<([\d.]+)>$", line).group(1)) if re.search(r"<[\d.]+>$", line) else 0
        print("  the slowest calls:")
        for line in sorted(calls, key=took, reverse=True)[:5]:
            print("    " + (line if len(line) < 150 else line[:110] + " … " + line[-30:]))


def short_name(name):
    """A demangled name without template arguments, parameters and namespaces of the standard library."""
    out, depth = [], 0
    for char in name:
        if char in "<(":
            depth += 1
        elif char in ">)":
            depth = max(depth - 1, 0)
        elif depth == 0:
            out.append(char)
    return "".join(out).replace("(anonymous namespace)::", "").replace("json_abi_v3_11_2::", "").replace("::::", "::").strip()


def report(results, args):
    def ms(values):
        return statistics.median(values) / 1e6

    print(f"\nWall time per stage in ms: median [p10-p90] over {args.runs} runs; ratios of medians; CPU is user "
          f"plus system time, median. "
          f"Test VMM with N vCPU threads + {args.io_threads} I/O threads + main thread. Kernel: {args.kernel}. "
          f"vCPU proof: {'thread names (--no-kvm)' if args.no_kvm else 'KVM vCPU fds (the test VMM holds them)'}; "
          f"O beside S in {', '.join(OVERHEAD_CONTROLLERS)}; hooks run with {GATE}.\n")
    header = (f"{'vCPUs':>5} {'stage':<13} {'hooks':>22} {'floor':>22} {'peer':>22} "
              f"{'hooks/floor':>11} {'peer/hooks':>10} {'CPU ms h/f':>11} {'peak RSS KiB h/f/p':>19}")
    print(header)
    print("-" * len(header))
    summary = {}
    for vcpus in args.vcpus:
        for stage in STAGES:
            cells, medians, rss, cpu = [], {}, [], {}
            for impl in IMPLS:
                times = [t for t, _, _ in results[(impl, vcpus, stage)]]
                medians[impl] = ms(times)
                cells.append(f"{medians[impl]:7.2f} [{percentile(times, .1) / 1e6:5.2f}-"
                             f"{percentile(times, .9) / 1e6:6.2f}]")
                rss.append(max(k for _, k, _ in results[(impl, vcpus, stage)]))
                cpu[impl] = statistics.median(c for _, _, c in results[(impl, vcpus, stage)]) / 1e6
            ratio_floor = medians["hooks"] / medians["floor"]
            ratio_peer = medians["peer"] / medians["hooks"]
            summary[(vcpus, stage)] = (medians, ratio_floor, ratio_peer, rss)
            print(f"{vcpus:>5} {stage:<13} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22} "
                  f"{ratio_floor:>10.2f}x {ratio_peer:>9.2f}x {cpu['hooks']:>5.2f}/{cpu['floor']:<5.2f} "
                  f"{'/'.join(map(str, rss)):>19}")
    if len(args.vcpus) > 1:
        low, high = min(args.vcpus), max(args.vcpus)
        print(f"\nCost per added vCPU thread, poststart, {low} -> {high} vCPUs (linear cost: the same for all):")
        for impl in IMPLS:
            a = summary[(low, "poststart")][0][impl]
            b = summary[(high, "poststart")][0][impl]
            print(f"  {impl:<6} {(b - a) * 1000 / (high - low):6.1f} us")
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--vcpus", default="1,8,64,256",
                        type=lambda text: [int(n) for n in text.split(",")])
    parser.add_argument("--io-threads", type=int, default=4)
    parser.add_argument("--kernel", choices=("cold", "warm"), default="warm",
                        help="warm: a no-op migration right before poststart takes the kernel's RCU grace "
                             "period out of the figure (the default); cold: the stage pays it")
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--config-json", default="{}",
                        help="configuration keys for the hooks on top of the benchmark's, e.g. "
                             "'{\"log_syslog\": false}'")
    parser.add_argument("--no-kvm", action="store_true",
                        help="the test VMM without KVM fds (no /dev/kvm), the hooks with vcpu_proof \"names\"")
    parser.add_argument("--callgrind", metavar="DIR",
                        help="instead of timing: one run of the hooks at 8 vCPUs under valgrind's callgrind, its "
                             "profiles written to DIR, and where each stage's instructions go")
    parser.add_argument("--strace", metavar="DIR",
                        help="instead of timing: one run of the hooks (at the first of --vcpus) under "
                             "strace -c -w, the summaries written to DIR and printed: where the wall time goes")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run_bench.py: needs root (it makes cgroups)")
    try:
        bench = Bench(args)
    except BenchError as e:
        sys.exit(f"run_bench.py: {e}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bench.setup()
        if args.strace:
            if not shutil.which("strace"):
                raise BenchError("strace not found: apt-get install strace")
            syscall_profile(bench, args)
            return
        if args.callgrind:
            if not shutil.which("valgrind"):
                raise BenchError("valgrind not found: apt-get install valgrind")
            profile(bench, args)
            return
        results = bench.run()
    except BenchError as e:
        sys.exit(f"run_bench.py: {e}")
    finally:
        bench.cleanup()
    report(results, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"impl": i, "vcpus": v, "stage": s, "ns": [t for t, _, _ in r], "rss_kib": [k for _, k, _ in r],
                        "cpu_ns": [c for _, _, c in r]}
                       for (i, v, s), r in results.items()], f)


if __name__ == "__main__":
    main()
