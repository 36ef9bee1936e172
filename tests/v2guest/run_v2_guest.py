#!/usr/bin/env python3
"""Runs the hooks in a pure cgroup v2 Linux guest booted under QEMU/TCG.

    python3 tests/v2guest/run_v2_guest.py --build-dir build [--cache-dir DIR] [--manual] [--probes] [-v]

Gets Debian 12's kernel (apt-get download, cached), builds an initramfs from busybox-static, the hooks, the
test VMM, the libraries they need and tests/v2guest/init.sh as /init, boots it and reads the results the
guest prints on its serial console. Exit status 0 only if every case passed and the guest finished.
Standard library only; needs apt-get, apt-cache and dpkg-deb (Debian), qemu-system-x86_64, busybox-static,
ldd (libc-bin). See README.md next to this file.
"""
import argparse
import gzip
import io
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "vmmcg-v2-"
KERNEL_META = "linux-image-amd64"
KERNEL_NAME = re.compile(r"^linux-image-(6\.1\.\d+-\d+-amd64)$")
HOOKS = ("vmm-cgroup-create-runtime", "vmm-cgroup-poststart", "vmm-cgroup-poststop")
DEFAULT_CASES = "split sandbox-only split-late"
GUEST_BUNDLE = "/bundle-dir"  # init.sh's BUNDLE; each case's id is init.sh's container_id: vmmcg-v2-<case>


def instance_name(cid, bundle):
    """The hooks' instance name (common/layout.cpp; tests/e2e/e2e_lib.py has the same): the id and the FNV-1a
    64 hash of the bundle path. It names the record file the guest checks."""
    h = 0xcbf29ce484222325
    for byte in bundle.encode():
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{cid}-{h:016x}"
CMDLINE = "console=ttyS0 panic=-1 quiet cgroup_no_v1=all"

# Built in (=y) in the kernel, or the guest cannot boot or test: no modules are loaded in the guest.
REQUIRED_CONFIG = (
    "CONFIG_SERIAL_8250_CONSOLE", "CONFIG_BLK_DEV_INITRD", "CONFIG_RD_GZIP", "CONFIG_DEVTMPFS",
    "CONFIG_BINFMT_ELF", "CONFIG_BINFMT_SCRIPT", "CONFIG_PROC_FS", "CONFIG_SYSFS", "CONFIG_TMPFS",
    "CONFIG_CGROUPS", "CONFIG_CGROUP_SCHED", "CONFIG_FAIR_GROUP_SCHED", "CONFIG_CFS_BANDWIDTH",
    "CONFIG_CPUSETS", "CONFIG_MEMCG", "CONFIG_CGROUP_PIDS",
)

RESULT = re.compile(r"VMMCG-RESULT (PASS|FAIL) ([^\s:]+)(?:: (.*))?")
PROBE = re.compile(r"VMMCG-PROBE (.*)")
INFO = re.compile(r"VMMCG-(INFO|LOG) (.*)")
ESCAPES = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])")


class Failure(Exception):
    pass


def log(message):
    print(f"run_v2_guest: {message}", flush=True)


def run(args, **kwargs):
    return subprocess.run(args, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          **kwargs).stdout


# ---------------------------------------------------------------------------------------------------------
# The kernel


def kernel_package():
    """The concrete package linux-image-amd64 depends on, e.g. linux-image-6.1.0-56-amd64, and its version."""
    try:
        depends = run(["apt-cache", "depends", KERNEL_META])
    except (OSError, subprocess.CalledProcessError) as e:
        raise Failure(f"apt-cache depends {KERNEL_META}: {e}") from e
    names = [m.group(1) for m in re.finditer(r"Depends: (linux-image-\S+)", depends)
             if KERNEL_NAME.match(m.group(1))]
    if not names:
        raise Failure(f"apt-cache depends {KERNEL_META} names no linux-image-6.1.*-amd64 "
                      f"(run apt-get update first):\n{depends}")
    name = names[0]
    policy = run(["apt-cache", "policy", name])
    match = re.search(r"Candidate: (\S+)", policy)
    if not match or match.group(1) == "(none)":
        raise Failure(f"{name} has no candidate version (run apt-get update first)")
    return name, match.group(1)


def cached_kernels(cache_dir):
    root = os.path.join(cache_dir, "kernel")
    if not os.path.isdir(root):
        return []
    found = [os.path.join(root, d) for d in sorted(os.listdir(root))
             if os.path.isfile(os.path.join(root, d, "vmlinuz"))]
    return sorted(found, key=os.path.getmtime)


def get_kernel(cache_dir):
    """Returns (vmlinuz, config) from the cache, downloading and unpacking the package when missing."""
    try:
        name, version = kernel_package()
    except Failure as e:
        cached = cached_kernels(cache_dir)
        if not cached:
            raise
        log(f"{e}; using the cached {os.path.basename(cached[-1])}")
        return os.path.join(cached[-1], "vmlinuz"), os.path.join(cached[-1], "config")
    target = os.path.join(cache_dir, "kernel", f"{name}_{version}")
    vmlinuz, config = os.path.join(target, "vmlinuz"), os.path.join(target, "config")
    if os.path.isfile(vmlinuz) and os.path.isfile(config):
        log(f"kernel: {name} {version} (cached in {target})")
        return vmlinuz, config

    log(f"kernel: downloading {name} {version}")
    os.makedirs(cache_dir, exist_ok=True)
    download = tempfile.mkdtemp(prefix=PREFIX + "download-", dir=cache_dir)
    try:
        # apt-get warns that it downloads "unsandboxed as root" when _apt cannot write here: harmless.
        result = subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=download,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        debs = [f for f in os.listdir(download) if f.endswith(".deb")]
        if result.returncode != 0 or len(debs) != 1:
            raise Failure(f"apt-get download {name}={version} failed (apt-get update first?):\n{result.stdout}")
        unpack = os.path.join(download, "unpacked")
        os.mkdir(unpack)
        wanted = {f"./boot/vmlinuz-{name[len('linux-image-'):]}": "vmlinuz",
                  f"./boot/config-{name[len('linux-image-'):]}": "config"}
        # Only /boot is needed: the guest loads no modules. dpkg-deb --fsys-tarfile streams the data tar.
        with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", os.path.join(download, debs[0])],
                              stdout=subprocess.PIPE) as deb:
            with tarfile.open(fileobj=deb.stdout, mode="r|") as tar:
                for member in tar:
                    if member.name in wanted and member.isfile():
                        with tar.extractfile(member) as src, \
                                open(os.path.join(unpack, wanted[member.name]), "wb") as dst:
                            shutil.copyfileobj(src, dst)
            deb.stdout.close()
        if deb.returncode != 0:
            raise Failure(f"dpkg-deb --fsys-tarfile {debs[0]} failed")
        missing = [v for v in wanted.values() if not os.path.isfile(os.path.join(unpack, v))]
        if missing:
            raise Failure(f"{debs[0]} has no {', '.join(missing)} in /boot")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.rename(unpack, target)
        except OSError:
            if not (os.path.isfile(vmlinuz) and os.path.isfile(config)):
                raise  # else a concurrent run cached the same kernel first
    finally:
        shutil.rmtree(download, ignore_errors=True)
    log(f"kernel: cached in {target}")
    return vmlinuz, config


def check_kernel_config(config):
    values = {}
    with open(config) as f:
        for line in f:
            if line.startswith("CONFIG_") and "=" in line:
                key, value = line.strip().split("=", 1)
                values[key] = value
    wrong = [f"{key}={values.get(key, 'unset')}" for key in REQUIRED_CONFIG if values.get(key) != "y"]
    if wrong:
        raise Failure(f"the kernel lacks built-in support the guest needs: {', '.join(wrong)}")


# ---------------------------------------------------------------------------------------------------------
# The initramfs: cpio "newc", written here so that device nodes need no privileges and no cpio is needed.


class Cpio:
    def __init__(self):
        self.out = io.BytesIO()
        self.ino = 1
        self.names = set()

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name = name.lstrip("/")
        if name in self.names:
            return
        self.names.add(name)
        encoded = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data), 0, 0,
                  rdev[0], rdev[1], len(encoded), 0)
        self.ino += 1
        header = b"070701" + b"".join(b"%08X" % v for v in fields)
        self.out.write(header + encoded)
        self.out.write(b"\0" * (-(len(header) + len(encoded)) % 4))
        self.out.write(data)
        self.out.write(b"\0" * (-len(data) % 4))

    def directory(self, path):
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            self._entry("/".join(parts[:i]), stat.S_IFDIR | 0o755)

    def file(self, path, data, mode=0o755):
        self.directory(os.path.dirname(path))
        self._entry(path, stat.S_IFREG | mode, data)

    def symlink(self, path, target):
        self.directory(os.path.dirname(path))
        self._entry(path, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, path, major, minor):
        self.directory(os.path.dirname(path))
        self._entry(path, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return self.out.getvalue()


def libraries(executable):
    """Every shared object the executable needs, the dynamic loader included, as ldd lists them."""
    result = subprocess.run(["ldd", executable], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if "not a dynamic executable" in result.stdout or "statically linked" in result.stdout:
        return []
    if result.returncode != 0:
        raise Failure(f"ldd {executable}: {result.stdout}")
    paths = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if "=> not found" in line:
            raise Failure(f"ldd {executable}: {line}")
        match = re.match(r"(?:\S+ => )?(/\S+) \(0x", line)
        if match:
            paths.append(match.group(1))
    return paths


def read_binary(path, strip):
    """The file's bytes; with strip, without debug sections (16 MB hooks become ~1 MB: a faster boot)."""
    if strip and shutil.which("strip"):
        with tempfile.NamedTemporaryFile(prefix=PREFIX) as out:
            if subprocess.run(["strip", "--strip-debug", "-o", out.name, path]).returncode == 0:
                return out.read()
    with open(path, "rb") as f:
        return f.read()


def build_initramfs(path, executables, params, strip):
    """executables: {path in the guest: path on the host}."""
    cpio = Cpio()
    for d in ("dev", "proc", "sys", "run", "tmp", "etc", "root", "sys/fs/cgroup", "bundle-dir",
              "usr/local/bin", "lib/x86_64-linux-gnu", "lib64"):
        cpio.directory(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)

    busybox = shutil.which("busybox") or "/bin/busybox"
    if libraries(busybox):
        raise Failure(f"{busybox} is dynamically linked: install busybox-static")
    cpio.file("bin/busybox", read_binary(busybox, False))
    applets = run([busybox, "--list-full"]).split()
    for applet in applets:
        if applet != "bin/busybox":
            cpio.symlink(applet, "/bin/busybox")
    if "bin/sh" not in applets:
        cpio.symlink("bin/sh", "/bin/busybox")

    with open(os.path.join(HERE, "init.sh"), "rb") as f:
        cpio.file("init", f.read())
    cpio.file("etc/vmmcg-v2-params", params.encode(), 0o644)

    needed = {}
    for guest_path, host_path in executables.items():
        cpio.file(guest_path, read_binary(host_path, strip))
        for lib in libraries(host_path):
            needed[lib] = os.path.realpath(lib)
    for guest_path, host_path in sorted(needed.items()):
        # At the path ldd names (the loader at its PT_INTERP path, /lib64/...), as a regular file.
        cpio.file(guest_path, read_binary(host_path, strip))

    data = gzip.compress(cpio.finish(), compresslevel=6, mtime=0)
    with open(path, "wb") as f:
        f.write(data)
    return len(needed), len(data)


# ---------------------------------------------------------------------------------------------------------
# The guest


def boot(vmlinuz, initrd, timeout, verbose):
    """Boots the guest; returns (console lines, finished, seconds)."""
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        raise Failure("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
    args = [qemu, "-accel", "tcg", "-m", "512", "-smp", "2", "-kernel", vmlinuz, "-initrd", initrd,
            "-append", CMDLINE, "-nographic", "-no-reboot"]
    lines, done = [], threading.Event()
    start = time.monotonic()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def reader():
        for raw in proc.stdout:
            line = ESCAPES.sub("", raw.decode("utf-8", "replace").rstrip("\r\n").replace("\r", ""))
            lines.append(line)
            if verbose:
                print(f"guest| {line}", flush=True)
            if line.strip() == "VMMCG-DONE":
                done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        deadline = start + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if done.is_set():
                # /init powers off after DONE; give it a moment, then stop QEMU regardless.
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
                break
            time.sleep(0.1)
        if proc.poll() is None:
            if not done.is_set():
                log(f"timeout: no VMMCG-DONE after {timeout} s, stopping QEMU (pid {proc.pid})")
            proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        thread.join(timeout=5)
    return lines, done.is_set(), time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", required=True, help="meson build directory (hooks/, tests/test-vmm)")
    parser.add_argument("--cache-dir", help=f"kernel cache (default: <build-dir>/{PREFIX}cache)")
    parser.add_argument("--manual", action="store_true",
                        help="place threads by hand with shell writes in the guest instead of running the hooks "
                             "(proves the harness and the kernel's rules; implies --probes)")
    parser.add_argument("--probes", action="store_true", help="also probe the kernel's cgroup v2 rules")
    parser.add_argument("--cases", help="cases to run, of split, sandbox-only, split-late (default: all three; "
                                         "split-late needs the hooks and is skipped with --manual)")
    parser.add_argument("--timeout", type=float, default=100, help="hard limit for the guest, seconds")
    parser.add_argument("--no-strip", action="store_true", help="keep debug sections in the initramfs")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (initrd, console log)")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo the guest's console")
    options = parser.parse_args()

    started = time.monotonic()
    build = os.path.abspath(options.build_dir)
    cache = os.path.abspath(options.cache_dir or os.path.join(build, PREFIX + "cache"))

    # SIGTERM unwinds like Ctrl-C, so that QEMU is stopped and the work directory removed.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    work = tempfile.mkdtemp(prefix=PREFIX, dir="/tmp")
    try:
        executables = {"tmp/test-vmm": os.path.join(build, "tests", "test-vmm")}
        if not options.manual:
            for hook in HOOKS:
                executables[f"usr/local/bin/{hook}"] = os.path.join(build, "hooks", hook)
        missing = [p for p in executables.values() if not os.access(p, os.X_OK)]
        if missing:
            raise Failure(f"not built: {', '.join(missing)} (meson setup {build} && ninja -C {build})")

        vmlinuz, config = get_kernel(cache)
        check_kernel_config(config)
        cases = options.cases or DEFAULT_CASES
        instances = " ".join(f"vmmcg-v2-{c}:{instance_name(f'vmmcg-v2-{c}', GUEST_BUNDLE)}" for c in cases.split())
        params = (f"VMMCG_RUN={'manual' if options.manual else 'hooks'}\n"
                  f"VMMCG_PROBES={1 if options.manual or options.probes else 0}\n"
                  f"VMMCG_CASES='{cases}'\n"
                  f"VMMCG_INSTANCES='{instances}'\n")
        initrd = os.path.join(work, "initrd.gz")
        nlibs, size = build_initramfs(initrd, executables, params, not options.no_strip)
        log(f"initramfs: {len(executables)} executables, {nlibs} libraries, {size // 1024} KiB")

        lines, finished, seconds = boot(vmlinuz, initrd, options.timeout, options.verbose)
        with open(os.path.join(work, "console.log"), "w") as f:
            f.write("\n".join(lines) + "\n")
        log(f"guest ran {seconds:.1f} s")

        results = []
        for line in lines:
            if m := INFO.search(line):
                print(f"{m.group(1)} {m.group(2)}")
            elif m := PROBE.search(line):
                print(f"PROBE {m.group(1)}")
        for line in lines:
            if m := RESULT.search(line):
                results.append((m.group(1), m.group(2), m.group(3)))
                print(f"{m.group(1)} {m.group(2)}" + (f": {m.group(3)}" if m.group(3) else ""))
        failed = [r for r in results if r[0] == "FAIL"]
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed"
              f" ({'manual placement' if options.manual else 'hooks'}, {time.monotonic() - started:.1f} s in all)")
        if not finished or not results or failed:
            if not finished:
                print("FAIL guest: VMMCG-DONE never came")
            if not results:
                print("FAIL guest: no results")
            print("--- console (last 60 lines) ---")
            print("\n".join(lines[-60:]))
            return 1
        return 0
    except Failure as e:
        print(f"FAIL setup: {e}")
        return 1
    except KeyboardInterrupt:
        print("interrupted")
        return 130
    finally:
        if options.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
