"""The value benchmark on cgroup v2 (run_value.py --part v2): QMP latency only, in the v2 guest suite's kernel.

A Linux guest with a pure cgroup v2 hierarchy (Debian's 6.1 kernel, cgroup_no_v1=all, booted as the v2
suite boots it, TCG) runs the built hooks and an inner QEMU, TCG as well, with no guest: its one vCPU
spins at the reset vector of a 64 KiB "BIOS" that is one "jmp $" (an AP of -smp 2 would wait for a SIPI
nobody sends, so one vCPU, and a limit of half a CPU for it to saturate). For each mode, interleaved,
v2_init.sh starts the container's process in S, runs the hooks as crun does and times QMP round trips
with qmp_probe.c; the guest reports on its serial console, this module checks the placement and reports.

Nested TCG is slow: the inner QEMU's main loop runs at a fraction of the host's speed, so the figures are
relative (mode against mode), not comparable with part 1's.
"""
import os
import re
import shutil
import subprocess
import threading
import time

import guest

V2_CMDLINE = "console=ttyS0 panic=-1 quiet cgroup_no_v1=all no_timer_check"  # see run_value.GUEST_CMDLINE
HOOKS = ("vmm-cgroup-create-runtime", "vmm-cgroup-poststart", "vmm-cgroup-poststop")
ESCAPES = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])")
VCPU = re.compile(r"CPU_\d+/(TCG|KVM)")  # comm with spaces as underscores, as v2_init.sh prints it


class V2Error(Exception):
    pass


def spin_bios():
    """64 KiB of hlt with "jmp $" (EB FE) at the reset vector, 0xFFFFFFF0."""
    image = bytearray(b"\xf4" * 65536)
    image[-16:-14] = b"\xeb\xfe"
    return bytes(image)


def build_initramfs(path, build, params):
    v2 = guest.v2guest
    cpio = v2.Cpio()
    for d in ("dev", "proc", "sys", "run", "tmp", "etc", "bundle", "sys/fs/cgroup", "usr/local/bin"):
        cpio.directory(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)
    busybox = shutil.which("busybox") or "/bin/busybox"
    if v2.libraries(busybox):
        raise V2Error(f"{busybox} is dynamically linked: apt-get install busybox-static")
    cpio.file("bin/busybox", v2.read_binary(busybox, False))
    for applet in subprocess.run([busybox, "--list"], check=True, stdout=subprocess.PIPE, text=True).stdout.split():
        if applet != "busybox":
            cpio.symlink(f"bin/{applet}", "/bin/busybox")
    with open(os.path.join(guest.HERE, "v2_init.sh"), "rb") as f:
        cpio.file("init", f.read())
    cpio.file("etc/value2-params", params.encode(), 0o644)
    cpio.file("spin.bin", spin_bios(), 0o644)
    qemu = shutil.which("qemu-system-x86_64")
    executables = {f"usr/local/bin/{h}": os.path.join(build, "hooks", h) for h in HOOKS}
    executables["usr/local/bin/qmp-probe"] = os.path.join(build, "tests", "bench", "value", "vmmcg-value-qmp-probe")
    executables["usr/bin/qemu-system-x86_64"] = qemu
    # Debian builds TCG as a module, loaded from the directory QEMU was configured with.
    accel = "/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so"
    if os.path.isfile(accel):
        executables[accel.lstrip("/")] = accel
    needed = {}
    for guest_path, host_path in executables.items():
        if not os.path.isfile(host_path) or (not host_path.endswith(".so") and not os.access(host_path, os.X_OK)):
            raise V2Error(f"{host_path}: not built")
        cpio.file(guest_path, v2.read_binary(host_path, True))
        for lib in v2.libraries(host_path):
            needed[lib] = os.path.realpath(lib)
    for guest_path, host_path in sorted(needed.items()):
        cpio.file(guest_path, v2.read_binary(host_path, True))
    import gzip
    data = gzip.compress(cpio.finish(), compresslevel=1, mtime=0)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def boot(kernel, initrd, timeout, on_line):
    args = [shutil.which("qemu-system-x86_64"), "-accel", "tcg,thread=multi", "-m", "1024", "-smp", "2",
            "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio",
            "-kernel", kernel, "-initrd", initrd, "-append", V2_CMDLINE]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines, done = [], threading.Event()

    def reader():
        for raw in proc.stdout:
            line = ESCAPES.sub("", raw.decode("utf-8", "replace")).strip("\r\n").replace("\r", "")
            lines.append(line)
            on_line(line)
            if line.startswith("VALUE2-DONE"):
                done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline and not done.is_set():
            time.sleep(0.2)
        if done.is_set():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        thread.join(timeout=5)
    return lines, done.is_set()


def parse(lines, quota_cpus):
    """The runs the guest reported: [{"mode", "rep", "qmp_ms", "cpu", "stats", "place"}]; placement checked."""
    runs, run, errors = [], None, []
    for line in lines:
        if line.startswith("VALUE2-FAIL") or line.startswith("VALUE-QMP-FAIL"):
            errors.append(line)
        elif line.startswith("VALUE2-RUN "):
            _, mode, rep = line.split()
            run = {"mode": mode, "rep": int(rep), "qmp_ms": [], "stats": {}, "place": [[], []]}
            runs.append(run)
        elif run is None:
            continue
        elif line.startswith("VALUE2-PLACE "):
            _, tid, name, cgroup = line.split(None, 3)
            run["place"][1 if run["qmp_ms"] else 0].append((int(tid), name, cgroup))
        elif line.startswith("VALUE2-STAT "):
            _, side, when, *pairs = line.split()
            run["stats"].setdefault(side, {})[when] = dict(zip(pairs[::2], map(int, pairs[1::2])))
        elif line.startswith("VALUE-QMP "):
            run["qmp_ms"].extend(int(v) / 1000 for v in line.split()[1:])
        elif line.startswith("VALUE-CPU "):
            vcpu, process, wall, tck = (int(v) for v in line.split()[1:])
            run["cpu"] = {"vcpu_cpus": vcpu / tck / (wall / 1e9), "overhead_cpus": (process - vcpu) / tck / (wall / 1e9)}
    for run in runs:
        sandbox = f"/value2-{run['mode']}-{run['rep']}"
        for when, threads in zip(("before", "after"), run["place"]):
            vcpus = [t for t in threads if VCPU.fullmatch(t[1])]
            if len(vcpus) != 1:
                errors.append(f"{run['mode']} #{run['rep']} {when}: {len(vcpus)} vCPU threads: {threads}")
            for tid, name, cgroup in threads:
                want = sandbox
                if run["mode"] == "split":
                    want += "/vcpu" if VCPU.fullmatch(name) else "/overhead"
                if cgroup != want:
                    errors.append(f"{run['mode']} #{run['rep']} {when}: thread {tid} ({name}) in {cgroup}, not {want}")
        if not run["qmp_ms"] or "cpu" not in run:
            errors.append(f"{run['mode']} #{run['rep']}: no QMP figures")
    return runs, errors


def run(args, build, log):
    cache = os.path.abspath(args.cache_dir or os.path.join(args.build_dir, "vmmcg-v2-cache"))
    vmlinuz, config = guest.get_kernel(cache)
    kernel = guest.get_vmlinux(cache, vmlinuz, config)
    work = None
    import tempfile
    try:
        work = tempfile.mkdtemp(prefix=f"vmmcg-value-v2-{os.getpid()}-", dir="/tmp")
        initrd = os.path.join(work, "initrd.gz")
        quota = int(args.v2_limit * args.period_us)
        params = (f"MODES='no-limit sandbox-only split'\nREPS={args.v2_reps}\nWINDOW={args.v2_window}\n"
                  f"INTERVAL_MS={args.interval_ms}\nQUOTA={quota}\nPERIOD={args.period_us}\nWARM={args.v2_warm}\n")
        size = build_initramfs(initrd, build, params)
        log(f"v2: initramfs {size >> 20} MiB (the hooks, qmp-probe, QEMU and its libraries); booting")
        started = time.monotonic()

        def on_line(line):
            if line.startswith(("VALUE2-RUN", "VALUE2-READY", "VALUE2-FAIL")):
                log(f"v2 [{time.monotonic() - started:5.0f} s] {line}")
        lines, finished = boot(kernel, initrd, args.v2_timeout, on_line)
        log(f"v2: guest ran {time.monotonic() - started:.0f} s")
        runs, errors = parse(lines, args.v2_limit)
        if not finished:
            errors.append(f"the guest did not finish within {args.v2_timeout} s")
        if errors:
            raise V2Error("\n  ".join(errors) + "\n--- console, last 40 lines ---\n" + "\n".join(lines[-40:]))
        return runs
    finally:
        if work:
            shutil.rmtree(work, ignore_errors=True)
