#!/usr/bin/env python3
"""The value benchmark: what split mode is for, in numbers (issue 15). Not a test: it prints figures.

Part 1, the three modes. A real QEMU (TCG) boots a real Linux guest (Debian 12's 6.1 kernel, a busybox
initramfs: guest.py, init.sh) whose vCPUs spin, so that they saturate the container's CPU limit (a CFS
quota on S, 1 CPU by default). Each run is one fresh VMM, started as a runtime starts a container's
process (it joins S before exec) in one of three modes, interleaved, several repetitions:

  no-limit      S has no quota; no hooks
  sandbox-only  the quota on S, the whole VMM in S (the hooks run, configured sandbox-only)
  split         the quota on S; the built hooks run as crun runs them (createRuntime before exec,
                poststart right after) and place the VMM in O, its vCPU threads in S. Every thread is
                checked in every CPU hierarchy before and after measuring: a wrong placement fails the run.

During a window (10 s), what the guest's owner feels through the VMM's overhead threads:
  QMP           a query-status round trip every 20 ms (QEMU's main loop), timed on the host
  guest I/O     a 4 KiB O_DIRECT read or write on the virtio-blk disk every 20 ms (an iothread, or the main
                loop with --no-iothread), timed inside the guest by a SCHED_FIFO probe (guest_io.c) and
                reported on the serial console; after the window, sequential 64 KiB throughput
and what the node owner needs, as deltas over the same window:
  CPU           of the vCPU threads (utime+stime of /proc/<pid>/task/<tid>/stat) against the limit, of the
                overhead (the process's utime+stime, which keeps exited threads, minus the vCPUs'); and the
                cgroups' own cpuacct.usage
  throttling    nr_periods, nr_throttled, throttled_time of cpu.stat, of S and of O

Part 2, time to placement, with the test VMM (tests/test_vmm.cpp): from the VMM's exec (the kernel's exec
event) and from its last vCPU thread's creation (the kernel's fork event; netlink_proc.py) to every thread
in place (polled), and to the hooks' "complete", for the runc flow (poststart before the container's
process exec'd the VMM: the settler does the work) and the crun flow (poststart right after exec); and
what a settler waiting for a VMM that comes late costs in CPU, next to the prototypes of exec_wait.c.

Needs root, cgroup v1 cpu/cpuacct/cpuset hierarchies (v1 or hybrid host), qemu-system-x86_64, the built
tree (ninja -C build). Everything is named vmmcg-value-<pid> and removed at the end, also on failure or
Ctrl-C. /proc/loadavg is printed before and after: the figures are only as quiet as the machine.
"""
import argparse
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import run_bench  # noqa: E402  (the cgroups, the stripped hooks, their configuration, timed hook runs)
from run_bench import CONTROLLERS, BenchError, percentile, read, write  # noqa: E402
import guest  # noqa: E402
import netlink_proc  # noqa: E402

MODES = ("no-limit", "sandbox-only", "split")
FLOWS = ("runc", "runc-late", "crun", "crun-late-vcpus")
VCPU_NAME = re.compile(r"CPU \d+/(TCG|KVM)")
ESCAPES = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# no_timer_check: under TCG on a loaded host the kernel may not see the timer interrupt in the window it
# checks, and panics ("IO-APIC + timer doesn't work!").
GUEST_CMDLINE = "console=ttyS0 quiet panic=-1 no_timer_check"
PR_SET_CHILD_SUBREAPER = 36


def log(message):
    print(f"run_value: {message}", file=sys.stderr, flush=True)


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    qemu = shutil.which("qemu-system-x86_64")
    version = subprocess.run([qemu, "--version"], stdout=subprocess.PIPE, text=True).stdout.split("\n")[0] \
        if qemu else "none"
    return {"kernel": os.uname().release, "cpu": model, "cores": os.cpu_count(), "qemu": version}


def loadavg():
    return read("/proc/loadavg").strip()


def stat_cpu_ticks(path):
    """utime + stime of a /proc stat file, in clock ticks."""
    fields = read(path).rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def schedstat_ns(path):
    return int(read(path).split()[0])


def set_subreaper():
    """The hooks' settler is detached: as our orphan it can be reaped with its rusage (wait4)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise BenchError(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


class BootError(BenchError):
    """The guest did not boot: not a figure, tried again once."""


class Container:
    """The container's process as a runtime makes it: in S before exec, exec'ing argv when released (runc's
    init waits on its exec fifo so). release() returns the monotonic time right before execve."""

    def __init__(self, bench, sandbox, argv, stdin=None, stdout=None, prepare=None):
        go_r, go_w = os.pipe()
        info_r, info_w = os.pipe()
        procs = [os.path.join(bench.cgroup_dir(c, sandbox), "cgroup.procs") for c in CONTROLLERS]
        pid = os.fork()
        if pid == 0:
            try:
                os.close(go_w)
                os.close(info_r)
                for path in procs:
                    write(path, "0")
                os.write(info_w, b"j")
                if os.read(go_r, 1) != b"g":
                    os._exit(0)
                if stdin is not None:
                    os.dup2(stdin, 0)
                if stdout is not None:
                    os.dup2(stdout, 1)
                    os.dup2(stdout, 2)
                if prepare:
                    prepare()
                os.write(info_w, struct.pack("=Q", time.monotonic_ns()))
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        os.close(go_r)
        os.close(info_w)
        self.pid, self.go, self.info = pid, go_w, info_r
        bench.vmms.add(pid)
        if os.read(info_r, 1) != b"j":
            raise BenchError(f"the container's process {pid} could not join {sandbox}")

    def release(self):
        os.write(self.go, b"g")
        data = os.read(self.info, 8)
        os.close(self.go)
        os.close(self.info)
        if len(data) != 8:
            raise BenchError(f"the container's process {self.pid} did not reach exec")
        return struct.unpack("=Q", data)[0]


class Console:
    """QEMU's serial console: a pipe each way, read by a thread; lines kept, markers signalled."""

    def __init__(self):
        self.to_guest_r, self.to_guest = os.pipe()
        self.from_guest, self.from_guest_w = os.pipe()
        self.lines = []
        self.ready = threading.Event()
        self.io_done = threading.Event()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def start(self):
        os.close(self.to_guest_r)
        os.close(self.from_guest_w)
        self.thread.start()

    def _read(self):
        with os.fdopen(self.from_guest, "rb") as f:
            for raw in f:
                line = ESCAPES.sub("", raw.decode("utf-8", "replace")).strip("\r\n").replace("\r", "")
                self.lines.append(line)
                if line.startswith("VALUE-READY"):
                    self.ready.set()
                elif line.startswith(("VALUE-IO-DONE", "VALUE-IO-FAIL")):
                    self.io_done.set()
        self.closed.set()  # QEMU exited
        self.ready.set()
        self.io_done.set()

    def send(self, text):
        os.write(self.to_guest, text.encode())

    def close(self):
        try:
            os.close(self.to_guest)
        except OSError:
            pass
        self.thread.join(timeout=5)

    def tail(self, n=30):
        return "\n".join(self.lines[-n:])


class Qmp:
    def __init__(self, path, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise BenchError(f"QMP {path}: no connection")
                time.sleep(0.05)
        self.file = self.sock.makefile("rb")
        if b"QMP" not in self.file.readline():
            raise BenchError(f"QMP {path}: no greeting")
        self.command("qmp_capabilities")

    def command(self, name):
        """Round trip of one command, in ns; its events skipped."""
        request = json.dumps({"execute": name}).encode() + b"\n"
        start = time.perf_counter_ns()
        self.sock.sendall(request)
        while True:
            line = self.file.readline()
            if not line:
                raise BenchError("QMP: connection closed")
            if b'"return"' in line:
                return time.perf_counter_ns() - start
            if b'"error"' in line:
                raise BenchError(f"QMP {name}: {line.decode().strip()}")

    def close(self):
        self.file.close()
        self.sock.close()


class ValueBench(run_bench.Bench):
    def __init__(self, args):
        # What run_bench's Bench reads of its arguments: the hooks' configuration on top of its own.
        # The hooks' defaults (O beside S, enabled by --gate=runtime as the runtime wrapper adds them) but for:
        # vcpu_proof "names" (no_kvm: the guest runs under TCG, whose vCPU threads hold no KVM vCPU fds; the
        # test VMM of part 2 runs with --no-kvm alike), and cpuacct moved with cpu and cpuset, so that the
        # kernel's own accounting (cpuacct.usage) shows O's CPU apart from S's. It changes no scheduling.
        args.no_kvm = True
        args.config_json = json.dumps({"vmm_names": ["qemu-system-*", "test-vmm"],
                                       "overhead_controllers": list(CONTROLLERS), **json.loads(args.config_json)})
        args.callgrind, args.io_threads = None, 2
        super().__init__(args)
        self.prefix = f"vmmcg-value-{os.getpid()}"
        self.parent = "/" + self.prefix
        self.run_dir = f"/run/{self.prefix}"
        self.stderr_path = os.path.join(self.run_dir, "stderr")
        build = os.path.abspath(args.build_dir)
        self.guest_io = os.path.join(build, "tests", "bench", "value", "vmmcg-value-guest-io")
        self.exec_wait = os.path.join(build, "tests", "bench", "value", "vmmcg-value-exec-wait")
        for path in (self.guest_io, self.exec_wait):
            if not os.access(path, os.X_OK):
                raise BenchError(f"{path}: not built (ninja -C {args.build_dir})")
        self.qemu = shutil.which("qemu-system-x86_64")
        if not self.qemu:
            raise BenchError("qemu-system-x86_64 not found: apt-get install qemu-system-x86")
        self.work = None
        self.live = {}        # container id -> (state, uses hooks): poststop for what is still there
        self.qemus = set()    # QEMU pids not reaped
        self.listener = None
        self.sandbox_only_config = None

    # --- setup and cleanup -------------------------------------------------------------------------------

    def setup(self):
        super().setup()
        self.sandbox_only_config = os.path.join(self.run_dir, "config-sandbox-only.json")
        write(self.sandbox_only_config, json.dumps({**json.loads(read(self.config)), "mode": "sandbox-only"}))
        self.work = tempfile.mkdtemp(prefix=self.prefix + "-", dir="/tmp")

    def cleanup(self):
        for pid in list(self.qemus):
            self.kill(pid)
        for cid, (state, hooks) in list(self.live.items()):
            if hooks:
                try:
                    self.hook("poststop", {**state, "status": "stopped"})
                except BenchError as e:
                    print(f"warning: poststop of {cid}: {e}", file=sys.stderr)
        self.live.clear()
        if self.listener:
            self.listener.close()
        super().cleanup()
        # Settlers poststop ended, orphans of ours (we are their subreaper): reap them.
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if self.work:
            shutil.rmtree(self.work, ignore_errors=True)

    def kill(self, pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        self.qemus.discard(pid)
        self.vmms.discard(pid)

    # --- cgroups, hooks and placement ----------------------------------------------------------------------

    def make_sandbox(self, name, quota_cpus):
        sandbox = f"{self.parent}/{name}"
        for controller in CONTROLLERS:
            self.make_cgroup(controller, sandbox)
        if quota_cpus:
            cpu = self.cgroup_dir("cpu", sandbox)
            write(os.path.join(cpu, "cpu.cfs_period_us"), str(self.args.period_us))
            write(os.path.join(cpu, "cpu.cfs_quota_us"), str(int(quota_cpus * self.args.period_us)))
        return sandbox

    def remove_sandbox(self, sandbox):
        for controller in CONTROLLERS:
            self.remove_cgroup_tree(controller, sandbox)

    def bundle(self, cid):
        return os.path.join(self.run_dir, "bundle-" + cid)

    def overhead(self, cid):
        """O, beside S as the hooks put it by default: <parent>/vmm-overhead-<instance>."""
        return f"{self.parent}/vmm-overhead-{run_bench.instance_name(cid, self.bundle(cid))}"

    def container_state(self, cid, sandbox, program):
        """The bundle's config.json (the program, which decides whether poststart may hand over to a
        settler; no enable annotation: --gate=runtime enables the hooks) and the OCI state."""
        bundle = self.bundle(cid)
        os.makedirs(bundle, exist_ok=True)
        write(os.path.join(bundle, "config.json"), json.dumps({
            "ociVersion": "1.0.2", "process": {"args": [program]}, "linux": {"cgroupsPath": sandbox}}))
        return {"ociVersion": "1.0.2", "id": cid, "bundle": bundle, "annotations": {}}

    def hook(self, stage, state, config=None):
        """Runs one built hook with the state on stdin (run_bench's launcher); its wall time in ns."""
        saved = self.config
        self.config = config or self.config
        try:
            ns, _rss, _cpu = self.timed(self.argv("hooks", stage, None, None, state.get("pid")), state)
        finally:
            self.config = saved
        return ns

    def record(self, cid):
        try:
            name = run_bench.instance_name(cid, self.bundle(cid))
            return json.loads(read(os.path.join(self.run_dir, "records", name + ".json")))
        except FileNotFoundError:
            return None

    def threads(self, pid):
        """[(tid, name, {controller: path})] of every thread of pid."""
        out = []
        for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
            try:
                name = read(f"/proc/{pid}/task/{tid}/comm").strip()
                where = {}
                for line in read(f"/proc/{pid}/task/{tid}/cgroup").splitlines():
                    _, names, path = line.split(":", 2)
                    for controller in names.split(","):
                        where[controller] = path
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited while listed
            out.append((int(tid), name, where))
        return out

    def misplaced(self, pid, split, sandbox, overhead, vcpus):
        """What is wrong with the placement (empty when every thread is where the mode puts it)."""
        wrong, seen = [], 0
        for tid, name, where in self.threads(pid):
            is_vcpu = bool(VCPU_NAME.fullmatch(name))
            seen += is_vcpu
            want = sandbox if is_vcpu or not split else overhead
            for controller in CONTROLLERS:
                if where.get(controller) != want:
                    wrong.append(f"thread {tid} ({name}) in {controller}:{where.get(controller)}, not {want}")
        if seen != vcpus:
            wrong.append(f"{seen} vCPU threads, expected {vcpus}")
        return wrong

    def wait_settled(self, cid, vcpus, timeout):
        """Until the record says placed and no settler runs; the settler, if one ran, reaped."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.record(cid)
            if record and not record.get("settler") and len(record.get("vcpus") or []) == vcpus:
                return record
            if time.monotonic() > deadline:
                raise BenchError(f"{cid}: not placed within {timeout} s (record: {record})\n"
                                 f"{read(self.stderr_path)}")
            time.sleep(0.01)

    def settler_done(self, cid, settler, out):
        """When the settler has called the placement complete: the record names no settler any more (it
        goes on as the VMM's watcher, or has ended). Its CPU up to then, from its schedstat (ns exact)."""
        record = self.record(cid)
        if record and record.get("settler"):
            return None
        done = time.monotonic_ns()
        try:
            out["settler_cpu_ms"] = schedstat_ns(f"/proc/{settler}/schedstat") / 1e6
        except OSError:
            finished, _, usage = os.wait4(settler, os.WNOHANG)  # it has ended (ours as subreaper)
            out["settler_cpu_ms"] = (usage.ru_utime + usage.ru_stime) * 1e3 if finished else None
        return done

    def reap(self, pid):
        """Waits for an orphaned settler (ours as subreaper); (exit monotonic ns, CPU ns from its rusage)."""
        try:
            _, _, usage = os.wait4(pid, 0)
        except ChildProcessError:
            return None, None
        return time.monotonic_ns(), int((usage.ru_utime + usage.ru_stime) * 1e9)

    # --- part 1: the three modes --------------------------------------------------------------------------

    def guest_assets(self):
        cache = os.path.abspath(self.args.cache_dir or os.path.join(self.args.build_dir, "vmmcg-v2-cache"))
        vmlinuz, config = guest.get_kernel(cache)
        modules, order = guest.get_modules(cache, vmlinuz)
        kernel = guest.get_vmlinux(cache, vmlinuz, config)
        initrd = os.path.join(self.work, "initrd.gz")
        guest.build_initramfs(initrd, self.guest_io, modules, order)
        disk = os.path.join(self.work, "disk.img")
        with open(disk, "wb") as f:
            f.truncate(self.args.disk_mib << 20)
        return kernel, initrd, disk

    def qemu_argv(self, cid, vmlinuz, initrd, disk, qmp):
        iothread = not self.args.no_iothread
        return [self.qemu, "-accel", "tcg,thread=multi", "-smp", str(self.args.vcpus), "-m", "256",
                "-nodefaults", "-display", "none", "-no-reboot",
                "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
                "-kernel", vmlinuz, "-initrd", initrd, "-append", GUEST_CMDLINE,
                "-name", f"{cid},debug-threads=on", "-qmp", f"unix:{qmp},server=on,wait=off",
                *(["-object", "iothread,id=io0"] if iothread else []),
                "-drive", f"file={disk},if=none,id=d0,format=raw,cache=writeback,aio=threads",
                "-device", "virtio-blk-pci,drive=d0" + (",iothread=io0" if iothread else "")]

    def counters(self, pid, sandbox, overhead):
        snap = {"t": time.monotonic(), "vcpu_ticks": 0, "process_ticks": stat_cpu_ticks(f"/proc/{pid}/stat"),
                "cgroups": {}}
        for tid, name, _ in self.threads(pid):
            if VCPU_NAME.fullmatch(name):
                snap["vcpu_ticks"] += stat_cpu_ticks(f"/proc/{pid}/task/{tid}/stat")
        for side, path in (("S", sandbox), ("O", overhead)):
            cpu, acct = self.cgroup_dir("cpu", path), self.cgroup_dir("cpuacct", path)
            if not os.path.isdir(cpu):
                continue
            stat = dict(line.split() for line in read(os.path.join(cpu, "cpu.stat")).splitlines())
            snap["cgroups"][side] = {"usage_ns": int(read(os.path.join(acct, "cpuacct.usage"))),
                                     **{k: int(v) for k, v in stat.items()}}
        return snap

    @staticmethod
    def cpu_delta(before, after):
        wall = after["t"] - before["t"]
        vcpu = (after["vcpu_ticks"] - before["vcpu_ticks"]) / CLK_TCK / wall
        process = (after["process_ticks"] - before["process_ticks"]) / CLK_TCK / wall
        out = {"wall_s": wall, "vcpu_cpus": vcpu, "overhead_cpus": process - vcpu}
        for side, b in before["cgroups"].items():
            a = after["cgroups"][side]
            out[side] = {"usage_cpus": (a["usage_ns"] - b["usage_ns"]) / 1e9 / wall,
                         "nr_periods": a["nr_periods"] - b["nr_periods"],
                         "nr_throttled": a["nr_throttled"] - b["nr_throttled"],
                         "throttled_s": (a["throttled_time"] - b["throttled_time"]) / 1e9}
        return out

    def value_run(self, mode, rep, assets):
        name = f"{mode}-{rep}"
        cid = f"{self.prefix}-{name}"
        split, hooks = mode == "split", mode != "no-limit"
        sandbox = self.make_sandbox(name, None if mode == "no-limit" else self.args.limit)
        overhead = self.overhead(cid)
        state = self.container_state(cid, sandbox, self.qemu)
        config = self.sandbox_only_config if mode == "sandbox-only" else None
        qmp_path = os.path.join(self.work, f"qmp-{name}.sock")
        console = Console()
        container = Container(self, sandbox, self.qemu_argv(cid, *assets, qmp_path),
                              stdin=console.to_guest_r, stdout=console.from_guest_w)
        pid = container.pid
        self.qemus.add(pid)
        console.start()
        qmp = None
        result = {"mode": mode, "rep": rep}
        try:
            if hooks:
                self.live[cid] = (state, True)
                self.hook("createRuntime", {**state, "status": "created", "pid": pid}, config)
            exec_ns = container.release()
            if hooks:  # crun: poststart right after exec
                self.hook("poststart", {**state, "status": "running", "pid": pid}, config)
            if split:
                record = self.wait_settled(cid, self.args.vcpus, 60)
                if record.get("settler"):
                    self.reap(record["settler"]["pid"])
            if not console.ready.wait(self.args.boot_timeout) or console.closed.is_set():
                raise BootError(f"{name}: the guest did not come up in {self.args.boot_timeout} s"
                                f"{' (QEMU exited)' if console.closed.is_set() else ''}:\n{console.tail()}")
            result["boot_s"] = (time.monotonic_ns() - exec_ns) / 1e9
            wrong = self.misplaced(pid, split, sandbox, overhead, self.args.vcpus)
            if wrong:  # not measured: the run is a failure, the benchmark goes on and then says so
                result["misplaced"] = f"{name}: placement wrong before measuring:\n  " + "\n  ".join(wrong)
                log("MISPLACED " + result["misplaced"])
                return result
            qmp = Qmp(qmp_path)
            time.sleep(self.args.warm)  # the spinners saturate the vCPUs, the quota bites
            before = self.counters(pid, sandbox, overhead)
            console.send(f"io {self.args.window} {self.args.interval_ms} {self.args.throughput_s}\n")
            samples = []
            start = next_at = time.monotonic()
            while time.monotonic() - start < self.args.window:
                samples.append(qmp.command("query-status"))
                next_at += self.args.interval_ms / 1000
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                else:
                    next_at = time.monotonic()
            after = self.counters(pid, sandbox, overhead)
            result["qmp_ms"] = [s / 1e6 for s in samples]
            result["cpu"] = self.cpu_delta(before, after)
            if not console.io_done.wait(self.args.window + 2 * self.args.throughput_s + 120) or \
                    console.closed.is_set():
                raise BenchError(f"{name}: the guest's I/O probe did not finish:\n{console.tail()}")
            self.parse_io(console.lines, result, name)
            wrong = self.misplaced(pid, split, sandbox, overhead, self.args.vcpus)
            if wrong:
                result["misplaced"] = f"{name}: placement wrong after measuring:\n  " + "\n  ".join(wrong)
                log("MISPLACED " + result["misplaced"])
        finally:
            if qmp:
                qmp.close()
            self.kill(pid)
            console.close()
        if hooks:
            self.hook("poststop", {**state, "status": "stopped"}, config)
            del self.live[cid]
            if split and any(os.path.exists(self.cgroup_dir(c, overhead)) for c in CONTROLLERS):
                raise BenchError(f"{name}: {overhead} left after poststop")
        self.remove_sandbox(sandbox)
        return result

    @staticmethod
    def parse_io(lines, result, name):
        result["io_read_ms"], result["io_write_ms"] = [], []
        for line in lines:
            if "VALUE-IO-FAIL" in line or "VALUE-FAIL" in line:
                raise BenchError(f"{name}: the guest says {line}")
            if line.startswith("VALUE-LAT "):
                kind, *values = line.split()[1:]
                key = "io_read_ms" if kind == "r" else "io_write_ms"
                result[key].extend(int(v) / 1000 for v in values)
            elif line.startswith("VALUE-THRU "):
                r, w, _, _ = line.split()[1:]
                result["read_mbps"], result["write_mbps"] = float(r), float(w)
        if not result["io_read_ms"] or "read_mbps" not in result:
            raise BenchError(f"{name}: no I/O figures from the guest")

    def value_part(self):
        assets = self.guest_assets()
        runs = []
        for rep in range(self.args.reps):
            order = MODES[rep % 3:] + MODES[:rep % 3]  # each mode in each position: drift falls on all
            for mode in order:
                started = time.monotonic()
                try:
                    runs.append(self.value_run(mode, rep, assets))
                except BootError as e:
                    log(f"{e}\n{mode} #{rep}: the guest did not boot; once more")
                    cid = f"{self.prefix}-{mode}-{rep}"
                    if cid in self.live:
                        state, _ = self.live.pop(cid)
                        self.hook("poststop", {**state, "status": "stopped"},
                                  self.sandbox_only_config if mode == "sandbox-only" else None)
                    self.remove_sandbox(f"{self.parent}/{mode}-{rep}")
                    runs.append(self.value_run(mode, rep, assets))
                r = runs[-1]
                if "misplaced" in r:
                    continue
                log(f"{mode} #{rep}: boot {r['boot_s']:.1f} s, QMP p99 {percentile(r['qmp_ms'], .99):.2f} ms, "
                    f"vCPUs {r['cpu']['vcpu_cpus']:.2f} CPU, overhead {r['cpu']['overhead_cpus']:.2f} CPU "
                    f"({time.monotonic() - started:.0f} s; load {loadavg()})")
        return runs

    # --- part 2: time to placement ------------------------------------------------------------------------

    def in_place(self, pid, sandbox, overhead, vcpus, names):
        """Every thread of pid where split mode puts it, from the cgroups' tasks files: a few reads a poll
        (names caches the threads' names once set: "CPU n/KVM", "IO ...")."""
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
            seen = 0
            for tid in tids:
                if tid not in names:
                    name = read(f"/proc/{pid}/task/{tid}/comm").strip()
                    if VCPU_NAME.fullmatch(name) or name.startswith("IO "):
                        names[tid] = name
                seen += bool(VCPU_NAME.fullmatch(names.get(tid, "")))
            if seen != vcpus:
                return False
            for controller in CONTROLLERS:
                in_s = set(map(int, read(os.path.join(self.cgroup_dir(controller, sandbox), "tasks")).split()))
                in_o = set(map(int, read(os.path.join(self.cgroup_dir(controller, overhead), "tasks")).split()))
                for tid in tids:
                    if tid not in (in_s if VCPU_NAME.fullmatch(names.get(tid, "")) else in_o):
                        return False
            return True
        except (FileNotFoundError, ProcessLookupError):
            return False

    def timeline(self, pid, settler):
        """When each thread of pid was created and named, from the kernel's events, in ms after the exec."""
        exec_at = self.listener.exec_time(pid) or 0
        created, named = self.listener.thread_times(pid), self.listener.name_times(pid)
        lines = [f"  timeline, ms after the VMM's exec (kernel events); settler pid {settler}:"]
        for tid in sorted(set(created) | set(named)):
            stat = f"/proc/{pid}/task/{tid}/stat"
            start = read(stat).rsplit(")", 1)[1].split()[19] if os.path.exists(stat) else "?"
            names = ", ".join(f"'{n}' at {(t - exec_at) / 1e6:.2f}" for t, n in named.get(tid, []))
            at = f"{(created[tid] - exec_at) / 1e6:.2f}" if tid in created else "?"
            lines.append(f"    thread {tid}: created at {at} (start_time {start} ticks), named {names or 'never'}")
        return "\n".join(lines)

    def placement_run(self, flow, index, delay_s):
        name = f"tp-{flow}-{index}"
        cid = f"{self.prefix}-{name}"
        vcpus = self.args.tp_vcpus
        sandbox = self.make_sandbox(name, None)
        overhead = self.overhead(cid)
        state = self.container_state(cid, sandbox, self.test_vmm)
        argv = [self.test_vmm, "--vcpus", str(vcpus), "--io-threads", "2", "--no-kvm",
                *(["--vcpu-delay-ms", str(self.args.late_vcpu_ms)] if flow == "crun-late-vcpus" else [])]
        container = Container(self, sandbox, argv)
        pid = container.pid
        self.listener.watch(pid)
        self.live[cid] = (state, True)
        out = {"flow": flow, "delay_s": delay_s}
        poststart = None
        try:
            runc = flow.startswith("runc")
            self.hook("createRuntime", {**state, "status": "creating" if runc else "created", "pid": pid})
            settler = None
            if runc:
                self.hook("poststart", {**state, "status": "created", "pid": pid})
                record = self.record(cid)
                if not record or not record.get("settler"):
                    raise BenchError(f"{name}: poststart before exec did not hand over to a settler")
                settler = record["settler"]["pid"]
                time.sleep(delay_s)
                waited_cpu = schedstat_ns(f"/proc/{settler}/schedstat")
                out["settler_cpu_before_exec_ms"] = waited_cpu / 1e6
                exec_ns = container.release()
            else:
                exec_ns = container.release()
                poststart = threading.Thread(target=self.hook,
                                             args=("poststart", {**state, "status": "running", "pid": pid}))
                poststart.start()
            # Until every thread is in place; or until the hooks are done (poststart returned, no settler
            # runs) and it still is not a moment later: then it stays wrong, and the run says so.
            deadline = time.monotonic() + 10
            names, done_ns, done_seen, wrong = {}, None, None, None
            while True:
                polled = time.monotonic_ns()
                if self.in_place(pid, sandbox, overhead, vcpus, names):
                    break
                if done_ns is None and poststart and not poststart.is_alive():
                    record = self.record(cid)
                    settler = record["settler"]["pid"] if record and record.get("settler") else None
                    if settler is None:
                        done_ns = time.monotonic_ns()
                if done_ns is None and settler:
                    done_ns = self.settler_done(cid, settler, out)
                if done_ns is not None:
                    done_seen = done_seen or time.monotonic()
                    if time.monotonic() - done_seen > 0.2:
                        wrong = "the hooks are done"
                        break
                if time.monotonic() > deadline:
                    wrong = "10 s after exec"
                    break
                time.sleep(self.args.poll_ms / 1000)
            if wrong:
                out["misplaced"] = (f"{name}: not in place, {wrong}:\n  " +
                                    "\n  ".join(self.misplaced(pid, True, sandbox, overhead, vcpus)) +
                                    f"\n  record: {json.dumps(self.record(cid))}\n" + self.timeline(pid, settler))
                log("MISPLACED " + out["misplaced"])
                return out
            if poststart:
                poststart.join()
                if done_ns is None:
                    record = self.record(cid)
                    settler = record["settler"]["pid"] if record and record.get("settler") else None
            while done_ns is None and settler and time.monotonic() < deadline:
                done_ns = self.settler_done(cid, settler, out)
                time.sleep(self.args.poll_ms / 1000)
            if done_ns is None and settler:
                raise BenchError(f"{name}: the settler did not call the placement complete within 10 s "
                                 f"(record: {self.record(cid)})")
            elif done_ns is None:
                done_ns = time.monotonic_ns()  # poststart completed by itself: it has returned
            record = self.wait_settled(cid, vcpus, 10)
            kernel_exec = self.listener.exec_time(pid)
            exec_at = kernel_exec or exec_ns
            threads = self.listener.thread_times(pid)
            vcpu_tids = [tid for tid, name_, _ in self.threads(pid) if VCPU_NAME.fullmatch(name_)]
            created = [threads[t] for t in vcpu_tids if t in threads]
            out.update({"settler": bool(settler), "exec_source": "kernel" if kernel_exec else "child",
                        "exec_to_place_ms": (polled - exec_at) / 1e6,
                        "exec_to_complete_ms": (done_ns - exec_at) / 1e6})
            if len(created) == vcpus:
                out["vcpu_to_place_ms"] = (polled - max(created)) / 1e6
            if self.args.explain_ms and out["exec_to_place_ms"] > self.args.explain_ms:
                log(f"{name}: in place {out['exec_to_place_ms']:.1f} ms after exec, complete "
                    f"{out['exec_to_complete_ms']:.1f} ms\n" + self.timeline(pid, settler))
            wrong = self.misplaced(pid, True, sandbox, overhead, vcpus)
            if wrong:
                out["misplaced"] = f"{name}: placement wrong once complete:\n  " + "\n  ".join(wrong)
                log("MISPLACED " + out["misplaced"])
        finally:
            if poststart:
                poststart.join()
            self.kill(pid)
            self.listener.forget(pid)
            self.hook("poststop", {**state, "status": "stopped"})
            del self.live[cid]
            self.remove_sandbox(sandbox)
            # a settler poststop ended: ours to reap
            try:
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            except ChildProcessError:
                pass
        return out

    def waiting_run(self, index):
        """A VMM that comes wait_s after poststart: the hooks' settler and the prototypes wait side by side."""
        name = f"wait-{index}"
        cid = f"{self.prefix}-{name}"
        vcpus = self.args.tp_vcpus
        sandbox = self.make_sandbox(name, None)
        overhead = self.overhead(cid)
        state = self.container_state(cid, sandbox, self.test_vmm)
        container = Container(self, sandbox, [self.test_vmm, "--vcpus", str(vcpus), "--io-threads", "2", "--no-kvm"])
        pid = container.pid
        self.listener.watch(pid)
        self.live[cid] = (state, True)
        protos = {}
        out = {"wait_s": self.args.wait_s}
        try:
            self.hook("createRuntime", {**state, "status": "creating", "pid": pid})
            self.hook("poststart", {**state, "status": "created", "pid": pid})
            settler = self.record(cid)["settler"]["pid"]
            timeout_ms = str(int((self.args.wait_s + 5) * 1000))
            for label, mode, period in (("poll 10 ms", "poll", "10"), ("poll 1 ms", "poll", "1"),
                                        ("backoff 5-250 ms", "backoff", "0"), ("proc connector", "netlink", "0"),
                                        ("proc connector, exec only", "netlink-exec", "0")):
                p = subprocess.Popen([self.exec_wait, mode, str(pid), timeout_ms, period],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                first = p.stdout.readline().split()
                if not first or first[0] != "waiting":
                    p.kill()
                    p.wait()
                    raise BenchError(f"exec-wait {mode}: {first} {p.stderr.read()}")
                protos[label] = (p, int(first[2]))
            start_cpu = schedstat_ns(f"/proc/{settler}/schedstat")
            start = time.monotonic()
            time.sleep(self.args.wait_s)
            waited = time.monotonic() - start
            settler_cpu = schedstat_ns(f"/proc/{settler}/schedstat") - start_cpu
            exec_ns = container.release()
            deadline = time.monotonic() + 10
            names = {}
            while not self.in_place(pid, sandbox, overhead, vcpus, names):
                if time.monotonic() > deadline:
                    raise BenchError(f"{name}: not in place 10 s after exec")
                time.sleep(self.args.poll_ms / 1000)
            placed = time.monotonic_ns()
            exec_at = self.listener.exec_time(pid) or exec_ns
            # it goes on as the VMM's watcher: until the record calls the placement complete
            while not self.settler_done(cid, settler, {}) and time.monotonic() < deadline:
                time.sleep(self.args.poll_ms / 1000)
            out["waiters"] = {"hooks' settler (process events; naps of 5 to 250 ms between)": {
                "cpu_us_per_s": settler_cpu / 1e3 / waited, "detect_ms": (placed - exec_at) / 1e6,
                "note": "detect = to every thread in place"}}
            for label, (p, cpu0) in protos.items():
                line, err = p.communicate(timeout=15)
                fields = line.split()
                if not fields or fields[0] != "detected":
                    out["waiters"][label] = {"failed": f"{line.strip()} {err.strip()}"}
                    continue
                values = dict(zip(fields[2::2], fields[3::2]))
                out["waiters"][label] = {"cpu_us_per_s": (int(values["cpu_ns"]) - cpu0) / 1e3 / waited,
                                         "detect_ms": (int(fields[1]) - exec_at) / 1e6,
                                         "wakeups_per_s": int(values["wakeups"]) / waited,
                                         "events_per_s": int(values["events"]) / waited}
            protos.clear()
        finally:
            for p, _ in protos.values():
                p.kill()
                p.wait()
            self.kill(pid)
            self.listener.forget(pid)
        self.hook("poststop", {**state, "status": "stopped"})
        del self.live[cid]
        self.remove_sandbox(sandbox)
        return out

    def placement_part(self):
        self.listener = netlink_proc.Listener()
        if not self.listener.start():
            raise BenchError("the proc connector (NETLINK_CONNECTOR, CN_IDX_PROC) sends no events: needs "
                             "CAP_NET_ADMIN in the initial user and pid namespaces")
        rng = random.Random(self.args.seed)
        runs = []
        for index in range(self.args.tp_runs):
            for flow in self.args.flows:
                delay = rng.uniform(*self.args.late_range) if flow == "runc-late" else 0.0
                runs.append(self.placement_run(flow, index, delay))
        log(f"time to placement: {len(runs)} runs done (load {loadavg()})")
        waits = [self.waiting_run(i) for i in range(self.args.wait_runs)]
        log(f"waiting settlers: {len(waits)} runs done (load {loadavg()})")
        return runs, waits


# --- the report ------------------------------------------------------------------------------------------


def spread(values, fmt="{:.2f}"):
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def pooled(runs, key):
    return [v for r in runs for v in r[key]]


def report_value(runs, args):
    by_mode = {m: [r for r in runs if r["mode"] == m and "misplaced" not in r] for m in MODES}
    print(f"\nPart 1: {args.vcpus} spinning vCPUs, limit {args.limit} CPU (cfs quota on S), {args.reps} runs a "
          f"mode, {args.window} s windows, a QMP query-status and a guest I/O request every {args.interval_ms} ms "
          f"(disk on {'an iothread' if not args.no_iothread else 'the main loop'}).")
    print("Latency in ms: p50 / p99 / max of all runs' samples pooled; [min-max] of the runs' p99.\n")
    header = (f"{'mode':<13} {'QMP p50':>7} {'p99':>6} {'max':>6} {'p99 of runs':>13} | {'read p50':>8} "
              f"{'p99':>6} {'max':>6} | {'write p50':>9} {'p99':>6} {'max':>6} | {'MB/s read':>17} "
              f"{'write':>17}")
    print(header)
    print("-" * len(header))
    summary = {}
    for mode, rs in by_mode.items():
        if not rs:
            continue
        q, rd, wr = pooled(rs, "qmp_ms"), pooled(rs, "io_read_ms"), pooled(rs, "io_write_ms")
        p99s = [percentile(r["qmp_ms"], .99) for r in rs]
        summary[mode] = {"qmp": (percentile(q, .5), percentile(q, .99), max(q)),
                         "read": (percentile(rd, .5), percentile(rd, .99), max(rd)),
                         "write": (percentile(wr, .5), percentile(wr, .99), max(wr))}
        print(f"{mode:<13} {percentile(q, .5):7.2f} {percentile(q, .99):6.1f} {max(q):6.1f} "
              f"{min(p99s):5.1f}-{max(p99s):<6.1f} | {percentile(rd, .5):8.2f} {percentile(rd, .99):6.1f} "
              f"{max(rd):6.1f} | {percentile(wr, .5):9.2f} {percentile(wr, .99):6.1f} {max(wr):6.1f} | "
              f"{spread([r['read_mbps'] for r in rs], '{:.0f}'):>17} "
              f"{spread([r['write_mbps'] for r in rs], '{:.0f}'):>17}")
    print(f"\nCPU in CPUs over the window: median [min-max] of the runs. vCPUs and overhead from the threads' "
          f"utime+stime; S and O from cpuacct.usage; throttled: periods throttled / periods, and time.\n")
    header = (f"{'mode':<13} {'vCPUs':>17} {'overhead':>17} {'S usage':>17} {'O usage':>17} | "
              f"{'S throttled':>15} {'S thr. s':>6} | {'O throttled':>11}")
    print(header)
    print("-" * len(header))
    failures = [r["misplaced"].split(":\n")[0] for r in runs if "misplaced" in r]
    for mode, rs in by_mode.items():
        if not rs:
            continue
        cpu = [r["cpu"] for r in rs]

        def side(name, key):
            return [c[name][key] for c in cpu if name in c]
        s_thr = f"{sum(side('S', 'nr_throttled'))}/{sum(side('S', 'nr_periods'))}"
        o_thr = f"{sum(side('O', 'nr_throttled'))}/{sum(side('O', 'nr_periods'))}" if side("O", "nr_periods") \
            or mode == "split" else "-"
        print(f"{mode:<13} {spread([c['vcpu_cpus'] for c in cpu]):>17} {spread([c['overhead_cpus'] for c in cpu]):>17} "
              f"{spread(side('S', 'usage_cpus')):>17} {spread(side('O', 'usage_cpus')) if side('O', 'usage_cpus') else '-':>17} | "
              f"{s_thr:>15} {statistics.median(side('S', 'throttled_s')):6.2f} | {o_thr:>11}")
        summary[mode]["vcpu_cpus"] = statistics.median(c["vcpu_cpus"] for c in cpu)
        summary[mode]["overhead_cpus"] = statistics.median(c["overhead_cpus"] for c in cpu)
        if mode != "no-limit":
            over = [c["vcpu_cpus"] for c in cpu if c["vcpu_cpus"] > args.limit * 1.05]
            if over:
                failures.append(f"{mode}: the vCPUs used {max(over):.2f} CPU, above the limit {args.limit}")
    if "split" in summary and "no-limit" in summary and "sandbox-only" in summary:
        s, n, b = (summary[m]["qmp"][1] for m in ("split", "no-limit", "sandbox-only"))
        print(f"\nQMP p99: split {s:.1f} ms, no limit {n:.1f} ms, sandbox-only {b:.1f} ms "
              f"(sandbox-only / split = {b / s:.1f}x); vCPUs in split: {summary['split']['vcpu_cpus']:.2f} CPU "
              f"of a {args.limit} CPU limit.")
    return summary, failures


def report_placement(runs, waits, args):
    print(f"\nPart 2: time to placement, test VMM with {args.tp_vcpus} vCPU threads + 2 I/O threads, "
          f"{args.tp_runs} runs a flow; ms, p50 / p99 / max. 'in place' is polled every {args.poll_ms} ms; "
          f"exec and thread creation are the kernel's event times. 'complete': the record calls the placement "
          f"complete (the settler goes on as the watcher), or poststart returns; after settle_quiet_ms.")
    print("  runc: poststart before exec, the VMM exec'd right after it returns; runc-late: exec'd "
          f"{args.late_range[0]}-{args.late_range[1]} s after; crun: poststart right after exec; "
          f"crun-late-vcpus: the same, vCPUs created {args.late_vcpu_ms} ms after exec.\n")
    header = f"{'flow':<16} {'exec -> in place':>22} {'last vCPU -> in place':>22} {'exec -> complete':>22} {'settler':>8}"
    print(header)
    print("-" * len(header))
    summary = {}

    def cell(values):
        return f"{percentile(values, .5):6.1f} {percentile(values, .99):6.1f} {max(values):6.1f}" if values else "-"
    for flow in FLOWS:
        bad = [r for r in runs if r["flow"] == flow and "misplaced" in r]
        rs = [r for r in runs if r["flow"] == flow and "misplaced" not in r]
        if bad:
            print(f"{flow:<16} {len(bad)} of {len(bad) + len(rs)} runs never in place (see MISPLACED above)")
        if not rs:
            continue
        a = [r["exec_to_place_ms"] for r in rs]
        v = [r["vcpu_to_place_ms"] for r in rs if "vcpu_to_place_ms" in r]
        c = [r["exec_to_complete_ms"] for r in rs]
        summary[flow] = {"exec_to_place": a, "vcpu_to_place": v, "exec_to_complete": c}
        print(f"{flow:<16} {cell(a):>22} {cell(v):>22} {cell(c):>22} {sum(r['settler'] for r in rs):>4}/{len(rs)}")
    if waits:
        print(f"\nA waiting settler: the VMM comes {args.wait_s} s after poststart ({len(waits)} runs, median); "
              "CPU while waiting, and exec to noticed (prototypes) or to every thread in place (the hooks):\n")
        header = f"{'waiter':<36} {'CPU us/s':>9} {'exec -> noticed ms':>19} {'wakeups/s':>10} {'events/s':>9}"
        print(header)
        print("-" * len(header))
        for label in waits[0]["waiters"]:
            entries = [w["waiters"][label] for w in waits if "cpu_us_per_s" in w["waiters"].get(label, {})]
            if not entries:
                print(f"{label:<36} failed: {waits[0]['waiters'][label].get('failed')}")
                continue
            med = {k: statistics.median(e[k] for e in entries) for k in entries[0] if k != "note"}
            print(f"{label:<36} {med['cpu_us_per_s']:9.1f} {med['detect_ms']:19.2f} "
                  f"{med.get('wakeups_per_s', float('nan')):10.1f} {med.get('events_per_s', float('nan')):9.1f}")
    return summary


def report_v2(runs, args):
    print(f"\nv2 (a cgroup v2 guest, nested TCG): the inner QEMU's one spinning vCPU, limit {args.v2_limit} CPU "
          f"(cpu.max on S; S/vcpu in split), {args.v2_reps} runs a mode, {args.v2_window} s windows, a QMP "
          f"query-status every {args.interval_ms} ms, timed in the guest. ms: p50 / p99 / max pooled, [min-max] "
          "of the runs' p99. CPU of the guest's CPUs.\n")
    header = (f"{'mode':<13} {'QMP p50':>7} {'p99':>7} {'max':>7} {'p99 of runs':>15} | {'vCPU':>5} {'overhead':>8} | "
              f"throttled (periods) S, S/vcpu, S/overhead")
    print(header)
    print("-" * len(header))
    for mode in MODES:
        rs = [r for r in runs if r["mode"] == mode]
        if not rs:
            continue
        q = pooled(rs, "qmp_ms")
        p99s = [percentile(r["qmp_ms"], .99) for r in rs]
        throttled = []
        for side in ("S", "vcpu", "overhead"):
            d = [r["stats"][side] for r in rs if side in r["stats"] and "after" in r["stats"][side]]
            if d:
                t = sum(x["after"].get("nr_throttled", 0) - x["before"].get("nr_throttled", 0) for x in d)
                n = sum(x["after"].get("nr_periods", 0) - x["before"].get("nr_periods", 0) for x in d)
                throttled.append(f"{t}/{n}")
            else:
                throttled.append("-")
        print(f"{mode:<13} {percentile(q, .5):7.2f} {percentile(q, .99):7.1f} {max(q):7.1f} "
              f"{min(p99s):6.1f}-{max(p99s):<8.1f} | {statistics.median(r['cpu']['vcpu_cpus'] for r in rs):5.2f} "
              f"{statistics.median(r['cpu']['overhead_cpus'] for r in rs):8.2f} | {', '.join(throttled)}")


def make_plots(data, directory):
    try:
        import plot
    except ImportError:
        # matplotlib is Debian's (python3-matplotlib): when this interpreter is not Debian's, Debian's draws.
        if not os.access("/usr/bin/python3", os.X_OK):
            raise
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(data, f)
            f.flush()
            subprocess.run(["/usr/bin/python3", os.path.join(HERE, "plot.py"), f.name, directory], check=True)
        return
    for path in plot.make_all(data, directory):
        print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--cache-dir", help="kernel cache (default: the v2 guest suite's, <build-dir>/vmmcg-v2-cache)")
    parser.add_argument("--part", choices=("all", "modes", "placement", "v2"), default="all",
                        help="all: the three modes (v1/hybrid host) and time to placement; v2: QMP latency of "
                             "the three modes in a cgroup v2 guest (nested TCG, minutes; not in all)")
    parser.add_argument("--reps", type=int, default=3, help="runs of each mode (interleaved)")
    parser.add_argument("--window", type=float, default=10, help="seconds of QMP and I/O sampling a run")
    parser.add_argument("--interval-ms", type=int, default=20)
    parser.add_argument("--throughput-s", type=float, default=1, help="seconds of reads, then of writes")
    parser.add_argument("--warm", type=float, default=1.0, help="seconds between the guest's READY and the window")
    parser.add_argument("--vcpus", type=int, default=2)
    parser.add_argument("--limit", type=float, default=1.0, help="the container's CPU limit, in CPUs")
    parser.add_argument("--period-us", type=int, default=100000)
    parser.add_argument("--disk-mib", type=int, default=64)
    parser.add_argument("--no-iothread", action="store_true", help="the disk on the main loop, with QMP")
    parser.add_argument("--boot-timeout", type=float, default=120)
    parser.add_argument("--tp-runs", type=int, default=20, help="time-to-placement runs per flow")
    parser.add_argument("--tp-vcpus", type=int, default=4)
    parser.add_argument("--flows", type=lambda t: t.split(","), default=list(FLOWS),
                        help=f"time-to-placement flows, of {','.join(FLOWS)}")
    parser.add_argument("--late-vcpu-ms", type=int, default=300)
    parser.add_argument("--late-range", type=lambda t: tuple(float(x) for x in t.split(",")), default=(0.2, 1.2),
                        help="runc-late: the exec comes a uniform random MIN,MAX seconds after poststart")
    parser.add_argument("--wait-s", type=float, default=4, help="how long the waiting settler waits")
    parser.add_argument("--wait-runs", type=int, default=2)
    parser.add_argument("--poll-ms", type=float, default=1, help="how often the benchmark checks placement")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--explain-ms", type=float, help="print the kernel's timeline of a run whose VMM took "
                                                          "longer than this from exec to in place")
    parser.add_argument("--v2-reps", type=int, default=2)
    parser.add_argument("--v2-window", type=float, default=8)
    parser.add_argument("--v2-limit", type=float, default=0.5, help="the limit of the inner QEMU's one vCPU")
    parser.add_argument("--v2-warm", type=float, default=2)
    parser.add_argument("--v2-timeout", type=float, default=900)
    parser.add_argument("--json", help="write every figure here (the plots are made from it)")
    parser.add_argument("--plots", metavar="DIR", help="write the PNGs here (plot.py)")
    parser.add_argument("--config-json", default="{}", help="configuration keys for the hooks on top of the "
                                                            "benchmark's")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run_value.py: needs root (it makes cgroups)")
    def terminated(*_):
        print("run_value.py: terminated, cleaning up", file=sys.stderr, flush=True)
        sys.exit(143)
    signal.signal(signal.SIGTERM, terminated)
    started = time.monotonic()
    info = machine()
    data = {"machine": info, "args": {k: v for k, v in vars(args).items()}, "loadavg_before": loadavg()}
    print(f"machine: Linux {info['kernel']}, {info['cpu']}, {info['cores']} cores; {info['qemu']}")
    print(f"loadavg before: {data['loadavg_before']}", flush=True)
    failures = []
    try:
        bench = ValueBench(args)
        set_subreaper()
    except BenchError as e:
        sys.exit(f"run_value.py: {e}")
    try:
        bench.setup()
        if args.part in ("all", "modes"):
            data["modes"] = bench.value_part()
        if args.part in ("all", "placement"):
            data["placement"], data["waiting"] = bench.placement_part()
        if args.part == "v2":
            import v2
            try:
                data["v2"] = v2.run(args, os.path.abspath(args.build_dir), log)
            except (v2.V2Error, guest.GuestError) as e:
                raise BenchError(f"v2: {e}") from None
    except BenchError as e:
        sys.exit(f"run_value.py: FAILED: {e}")
    except KeyboardInterrupt:
        sys.exit("run_value.py: interrupted")
    finally:
        bench.cleanup()
    data["loadavg_after"] = loadavg()
    data["seconds"] = time.monotonic() - started
    if "modes" in data:
        data["summary"], failures = report_value(data["modes"], args)
    if "placement" in data:
        report_placement(data["placement"], data["waiting"], args)
        failures += [r["misplaced"].split(":\n")[0] for r in data["placement"] if "misplaced" in r]
    if "v2" in data:
        report_v2(data["v2"], args)
    print(f"\nloadavg before: {data['loadavg_before']}; after: {data['loadavg_after']}; "
          f"{data['seconds']:.0f} s in all")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f)
    if args.plots:
        make_plots(data, args.plots)
    if failures:
        sys.exit("run_value.py: FAILED: " + "; ".join(failures))


if __name__ == "__main__":
    main()
