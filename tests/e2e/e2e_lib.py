"""Shared code of the end-to-end suite (test_e2e.py) and the demo (demo.py): the host's cgroup mounts, an
isolated podman, hook registration, the hooks' installation, placement reading and checking, and cleanup.

Everything this creates is named with PREFIX: temp dirs (/tmp/vmmcg-e2e-*), containers, cgroups (the
containers' cgroup parent and the overhead roots are top-level cgroups named PREFIX...). The podman it runs
never reads or writes the host's configuration or storage: its own --root, --runroot, --tmpdir,
--volumepath, --network-config-dir, containers.conf (CONTAINERS_CONF), storage.conf
(CONTAINERS_STORAGE_CONF) and registries.conf (CONTAINERS_REGISTRIES_CONF), file locks in its tmpdir.
"""

import errno
import glob
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time

PREFIX = "vmmcg-e2e-"
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
CGROUP_ROOT = "/sys/fs/cgroup"
STAGES = {
    "createRuntime": "vmm-cgroup-create-runtime",
    "poststart": "vmm-cgroup-poststart",
    "poststop": "vmm-cgroup-poststop",
}
ANNOTATION = "io.vmm-cgroup-hooks.enable"
GATE_ARGUMENT = "--gate=runtime"  # what the runtime wrapper adds to the hooks' arguments
# The hooks' default overhead_controllers: cpuacct is not moved (the container's accounting stays whole).
OVERHEAD_CONTROLLERS = ("cpu", "cpuset")
OVERHEAD_PREFIX = "vmm-overhead-"  # v1, overhead_parent "sandbox": O is <parent of S>/vmm-overhead-<instance>
RUNTIME_STATE_DIRS = ("/run/runc", "/run/crun")
ULIMITS = ("nofile=20000:20000", "nproc=32768:32768")


class Failure(Exception):
    """A test assertion that does not hold; the message is the reason printed after FAIL."""


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def run(argv, check=True, timeout=120, env=None, input=None, shown=None):
    """Runs argv, returns the CompletedProcess (text). check: raise Failure with stderr on a non-zero exit
    (naming the command as `shown`, default argv)."""
    shown = shown or argv
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise Failure(f"timed out after {timeout}s: {' '.join(shown)}") from e
    if check and proc.returncode != 0:
        out = (proc.stderr.strip() or proc.stdout.strip()).replace("\n", " | ")
        raise Failure(f"{' '.join(a for a in shown[:3] if a != '...')} exited {proc.returncode}: {out} "
                      f"(command: {' '.join(shown)})")
    return proc


# ----------------------------------------------------------------------------------------------------------
# The host's cgroups


def _mountinfo(path="/proc/self/mountinfo"):
    """(mount point, fs type, super options) per mount."""
    mounts = []
    with open(path) as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fields = left.split()
            fstype, _source, superopts = right.split()[:3]
            mounts.append((fields[4].encode().decode("unicode_escape"), fstype, superopts))
    return mounts


class Host:
    """The host's cgroup layout: mode ("v1", "hybrid", "v2"), the v1 hierarchies and the cgroup2 mount."""

    def __init__(self):
        mounts = _mountinfo()
        types = {}
        for point, fstype, _ in mounts:
            types[point] = fstype  # the last mount on a point is the visible one
        root_type = types.get(CGROUP_ROOT)
        if root_type == "cgroup2":
            self.mode = "v2"
        elif types.get(CGROUP_ROOT + "/unified") == "cgroup2":
            self.mode = "hybrid"
        else:
            self.mode = "v1"
        # key as /proc/<pid>/cgroup spells it ("cpu", "cpu,cpuacct", "name=systemd") -> mount point
        self.v1 = {}
        for point, fstype, superopts in mounts:
            if fstype != "cgroup":
                continue
            opts = superopts.split(",")
            ctrls = [o for o in opts if o in _KNOWN_V1 or o.startswith("name=")]
            # /proc/<pid>/cgroup lists controllers in the kernel's order, name= last
            key = ",".join(sorted((c for c in ctrls if not c.startswith("name=")), key=_V1_ORDER.index)
                           + [c for c in ctrls if c.startswith("name=")])
            if key and key not in self.v1:
                self.v1[key] = point
        self.unified = None
        if self.mode == "v2":
            self.unified = CGROUP_ROOT
        elif self.mode == "hybrid":
            self.unified = CGROUP_ROOT + "/unified"

    @staticmethod
    def is_overhead_key(key):
        return any(c in OVERHEAD_CONTROLLERS for c in key.split(","))

    def overhead_keys(self):
        return [k for k in self.v1 if self.is_overhead_key(k)]

    def mountpoint(self, key):
        return self.unified if key == "" else self.v1[key]

    def cgroup_dir(self, key, path):
        return os.path.join(self.mountpoint(key), path.lstrip("/"))


_V1_ORDER = ["cpuset", "cpu", "cpuacct", "io", "blkio", "memory", "devices", "freezer", "net_cls", "perf_event",
             "net_prio", "hugetlb", "pids", "rdma", "misc"]
_KNOWN_V1 = set(_V1_ORDER)


def proc_cgroups(pid, tid=None):
    """{hierarchy key: path} from /proc/<pid>[/task/<tid>]/cgroup; "" is the cgroup2 hierarchy."""
    path = f"/proc/{pid}/cgroup" if tid is None else f"/proc/{pid}/task/{tid}/cgroup"
    result = {}
    with open(path) as f:
        for line in f:
            _hid, ctrls, cg = line.rstrip("\n").split(":", 2)
            result[ctrls] = cg
    return result


def comm(pid, tid=None):
    path = f"/proc/{pid}/comm" if tid is None else f"/proc/{pid}/task/{tid}/comm"
    with open(path) as f:
        return f.read().rstrip("\n")


def threads(pid):
    """[(tid, name)] of a process, sorted by tid; [] when it is gone."""
    result = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return result
    for tid in sorted(tids, key=int):
        try:
            result.append((int(tid), comm(pid, tid)))
        except FileNotFoundError:
            pass
    return result


def children(pid):
    kids = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(path) as f:
                kids.extend(int(x) for x in f.read().split())
        except FileNotFoundError:
            pass
    return kids


def descendants(pid, depth=6):
    out = []
    frontier = [pid]
    for _ in range(depth):
        nxt = []
        for p in frontier:
            nxt.extend(children(p))
        out.extend(nxt)
        frontier = nxt
    return out


def exe_name(pid):
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


VCPU_RE = re.compile(r"^CPU \d+/(KVM|TCG)$")


def is_vcpu(name):
    return bool(VCPU_RE.match(name))


def cgroup_exists(host, key, path):
    return os.path.isdir(host.cgroup_dir(key, path))


def cgroup_pids(directory):
    try:
        with open(os.path.join(directory, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def prefixed_cgroups(host, prefix):
    """Every cgroup dir (all hierarchies, unified included) whose top-level name starts with prefix, deepest
    first."""
    found = []
    mounts = list(host.v1.values()) + ([host.unified] if host.unified else [])
    for mount in mounts:
        for top in glob.glob(os.path.join(glob.escape(mount), glob.escape(prefix) + "*")):
            if not os.path.isdir(top):
                continue
            for dirpath, _dirs, _files in os.walk(top):
                found.append(dirpath)
    found.sort(key=lambda p: p.count("/"), reverse=True)
    return found


def remove_cgroups(host, prefix, kill_pids=None):
    """Removes every cgroup named prefix* at the top of any hierarchy, deepest first. Tasks still inside are
    moved to the hierarchy's root first; kill_pids(pids) may end them (only processes the suite started)."""
    leftovers = []
    dirs = prefixed_cgroups(host, prefix)
    if kill_pids:
        pids = set()
        for d in dirs:
            pids.update(cgroup_pids(d))
        if pids:
            kill_pids(sorted(pids))
    for d in dirs:
        mount = next(m for m in list(host.v1.values()) + [host.unified] if m and d.startswith(m + "/"))
        for attempt in range(50):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    leftovers.append(f"{d}: {e.strerror}")
                    break
                for pid in cgroup_pids(d):
                    try:
                        with open(os.path.join(mount, "cgroup.procs"), "w") as f:
                            f.write(str(pid))
                    except OSError:
                        pass
                time.sleep(0.02 * (attempt + 1))
        else:
            leftovers.append(f"{d}: still busy")
    return leftovers


def instance_name(cid, bundle):
    """The hooks' name of one container instance (common/layout.cpp instance_name): the id, "-", and the
    FNV-1a 64 hash of the bundle path in 16 hex digits. The record is <record_dir>/<instance>.json, O on v1
    <parent of S>/vmm-overhead-<instance> (or <overhead_root>/<instance> with overhead_parent "root")."""
    h = 0xcbf29ce484222325
    for byte in bundle.encode():
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{cid}-{h:016x}"


def overhead_cgroup(s, instance, overhead_root=None):
    """O on a v1 host: beside S (the default, overhead_parent "sandbox"), or below overhead_root."""
    if overhead_root:
        return f"{overhead_root.rstrip('/')}/{instance}"
    return f"{os.path.dirname(s.rstrip('/'))}/{OVERHEAD_PREFIX}{instance}".replace("//", "/")


def expected_overhead_cap(cpus, period=100000, percent=25, min_millicpus=250):
    """O's cpu.cfs_quota_us per period under the hooks' defaults (common/backend.cpp OverheadPolicy): a
    quarter of the container's CPU limit, at least 250m; -1 (unlimited) when the container has no limit."""
    if not cpus:
        return -1
    return max(1000, int(max(cpus * percent / 100, min_millicpus / 1000) * period))


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def record_problems(record, cid, bundle, instance, o=None):
    """What is wrong with a record (version 2) of a split container: its name, bundle, phase, its O."""
    if record is None:
        return ["no readable record"]
    bad = []
    want = {"version": 2, "id": cid, "name": instance, "bundle": bundle, "phase": "created"}
    for key, value in want.items():
        if record.get(key) != value:
            bad.append(f"record {key} {record.get(key)!r}, expected {value!r}")
    if not isinstance(record.get("container"), dict) or not record["container"].get("pid"):
        bad.append(f"record container {record.get('container')!r}")
    if o is not None:
        hierarchies = (record.get("v1") or {}).get("hierarchies", [])
        overheads = sorted({h.get("overhead") for h in hierarchies})
        if overheads != [o]:
            bad.append(f"record v1 overhead cgroups {overheads}, expected [{o!r}]")
        controllers = sorted(c for h in hierarchies for c in h.get("controllers", []))
        if controllers != sorted(OVERHEAD_CONTROLLERS):
            bad.append(f"record v1 controllers {controllers}, expected {sorted(OVERHEAD_CONTROLLERS)}")
    return bad


# ----------------------------------------------------------------------------------------------------------
# Hooks: installation and registration


def install_hooks(build_dir, dest_prefix):
    """meson install of build_dir into the temp prefix dest_prefix (DESTDIR, so the configured prefix's
    paths are kept below it); returns the effective prefix directory that holds libexec/ and share/."""
    build_dir = os.path.abspath(build_dir)
    run(["meson", "install", "-C", build_dir, "--no-rebuild", "--quiet", "--destdir", dest_prefix],
        timeout=300)
    info = run(["meson", "introspect", "--buildoptions", build_dir]).stdout
    prefix = next(o["value"] for o in json.loads(info) if o["name"] == "prefix")
    return os.path.join(dest_prefix, prefix.lstrip("/"))


def wrapper_executable(prefix):
    """The installed runtime wrapper, vmm-cgroup-runtime, beside the hooks."""
    path = os.path.join(prefix, "libexec", "vmm-cgroup-hooks", "vmm-cgroup-runtime")
    if not os.access(path, os.X_OK):
        raise Failure(f"{path}: not installed (meson install into {prefix}?)")
    return path


def hook_executables(prefix):
    """{stage: path} of the installed hooks under an install prefix; raises Failure when one is missing."""
    exes = {}
    for stage, name in STAGES.items():
        path = os.path.join(prefix, "libexec", "vmm-cgroup-hooks", name)
        if not os.access(path, os.X_OK):
            raise Failure(f"{path}: not installed (meson install into {prefix}?)")
        exes[stage] = path
    return exes


def check_installed_hook_files(prefix, exes):
    """The installed hooks.d files: one per stage, schema 1.0.0, the anchored annotation, pointing at the
    installed executables (below the DESTDIR the paths are those of the configured prefix)."""
    files = sorted(glob.glob(os.path.join(prefix, "share", "containers", "oci", "hooks.d", "*.json")))
    if len(files) != 3:
        raise Failure(f"expected 3 hooks.d files under {prefix}/share/containers/oci/hooks.d, found {files}")
    stages = set()
    for path in files:
        with open(path) as f:
            doc = json.load(f)
        if doc.get("version") != "1.0.0":
            raise Failure(f"{path}: version {doc.get('version')!r}")
        if doc.get("when", {}).get("annotations") != {r"^io\.vmm-cgroup-hooks\.enable$": "^true$"}:
            raise Failure(f"{path}: when.annotations {doc.get('when')!r}")
        (stage,) = doc["stages"]
        stages.add(stage)
        if not exes[stage].endswith(doc["hook"]["path"]):
            raise Failure(f"{path}: hook.path {doc['hook']['path']} is not the installed {STAGES[stage]}")
    if stages != set(STAGES):
        raise Failure(f"hooks.d stages {sorted(stages)}")


HOOK_LOG_WRAPPER = """#!/bin/sh
# debugging only (--hook-log): crun throws hook output away; this keeps the hook's stderr
echo "=== $(date +%T.%N) {stage} (wrapper pid $$, parent $PPID: $(tr '\\0' ' ' < /proc/$PPID/cmdline))" >> {log}
exec {exe} "$@" 2>> {log}
"""


def write_hooks_dir(directory, exes, config_path=None, extra_args=(), hook_log=None):
    """A hooks.d dir: one schema-1.0.0 file per stage, matching the anchored enable annotation, running
    exes[stage] with --config config_path. hook_log (debugging): run each hook through a shell wrapper that
    appends its stderr to that file."""
    os.makedirs(directory, exist_ok=True)
    for stage, exe in exes.items():
        args = [exe] + (["--config", config_path] if config_path else []) + list(extra_args)
        path = exe
        if hook_log:
            path = os.path.join(directory, f"{PREFIX}{stage}.sh")
            with open(path, "w") as f:
                f.write(HOOK_LOG_WRAPPER.format(stage=stage, log=hook_log, exe=exe))
            os.chmod(path, 0o755)
        doc = {
            "version": "1.0.0",
            "hook": {"path": path, "args": args, "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
            "when": {"annotations": {r"^io\.vmm-cgroup-hooks\.enable$": "^true$"}},
            "stages": [stage],
        }
        with open(os.path.join(directory, f"{PREFIX}{stage.lower()}.json"), "w") as f:
            json.dump(doc, f, indent=2)
    return directory


def write_config(path, **keys):
    with open(path, "w") as f:
        json.dump(keys, f, indent=2)
    return path


# ----------------------------------------------------------------------------------------------------------
# An isolated podman


# crun 1.8.1 refuses hybrid hosts ("cgroups in hybrid mode not supported"): run it in a private mount
# namespace where the cgroup2 mount is hidden, so that it sees a v1 host. Two ways to hide it:
#   tmpfs:  a tmpfs mounted over it (the README's wrapper); /proc/self/mounts still lists the cgroup2 mount
#           under the tmpfs, and libcgroup 2.0.2's cgroup_init() fails there (ECGOTHER);
#   umount: the cgroup2 mount unmounted in that namespace; nothing lists it any more.
CRUN_HIDE = {
    "tmpfs": "mount -n -t tmpfs none /sys/fs/cgroup/unified",
    "umount": "umount -n /sys/fs/cgroup/unified",
}
CRUN_WRAPPER = """#!/bin/sh
# crun 1.8.1 refuses hybrid hosts: run it in a private mount namespace with the cgroup2 mount hidden
exec unshare --mount --propagation private sh -c '{hide} && exec {crun} "$@"' crun "$@"
"""


# podman passes the runtime a fixed environment: conmon gets LC_*, PATH, CONTAINERS_CONF, XDG_RUNTIME_DIR,
# HOME (podman 4.3 configureConmonEnv), and podman's own runtime calls (start, kill, delete) only PATH and
# XDG_RUNTIME_DIR. $VMMCG_RUNTIME_CONFIG set for podman would reach neither: under podman the wrapper reads
# its compiled runtime.json (/etc/vmm-cgroup-hooks/runtime.json), which a test may not write. So podman's
# --runtime is this shim, named as the wrapper (podman knows a runtime by its base name), which sets the
# variable and execs the installed wrapper: every runtime command still goes through the wrapper.
# It also gives the runtime the suite's private state root where a command lacks it: conmon's exit command
# (`podman container cleanup`) carries no --runtime-flag, so its `delete --force <id>` would look in
# /run/runc, find nothing, and the runtime would never run the poststop hook the wrapper added.
WRAPPER_SHIM = """#!/bin/sh
case " $* " in *" --root"*) ;; *) set -- --root={root} "$@" ;; esac
VMMCG_RUNTIME_CONFIG={config} exec {wrapper} "$@"
"""


class Podman:
    """podman with private storage and configuration under workdir; runtime "runc" or "crun" (through the
    wrapper above on hybrid hosts).

    runtime_wrapper: {"path": vmm-cgroup-runtime, "hook_dir": ..., "hook_config": ...}: podman's --runtime is
    the project's runtime wrapper instead, which execs the real runtime named in its runtime.json (written
    here) after adding the hooks to config.json with --gate=runtime. podman gives the runtime a fixed
    environment, so $VMMCG_RUNTIME_CONFIG is set by a shim of the wrapper's name (WRAPPER_SHIM)."""

    def __init__(self, workdir, host, runtime="runc", hooks_dir=None, cgroup_parent=None, crun_hide="tmpfs",
                 runtime_wrapper=None):
        if shutil.which("podman") is None:
            raise Failure("podman is not installed")
        self.host = host
        self.dir = workdir
        self.runtime_name = runtime
        self.hooks_dir = hooks_dir
        self.cgroup_parent = cgroup_parent
        d = lambda *p: os.path.join(workdir, *p)  # noqa: E731
        for sub in ("root", "runroot", "tmp", "volumes", "net", "bin", "tmpdir", "rt"):
            os.makedirs(d(sub), exist_ok=True)
        self.wrapped = False
        real = shutil.which(runtime)
        if real is None:
            raise Failure(f"{runtime} is not installed")
        if runtime == "crun" and host.mode == "hybrid":
            # the name stays "crun": podman picks runtime behaviour by the binary's base name
            self.wrapped = True
            self.runtime = d("bin", "crun")
            with open(self.runtime, "w") as f:
                f.write(CRUN_WRAPPER.format(hide=CRUN_HIDE[crun_hide], crun=os.path.realpath(real)))
            os.chmod(self.runtime, 0o755)
        else:
            self.runtime = os.path.realpath(real)
        self.real_runtime = self.runtime
        self.runtime_config = None
        if runtime_wrapper:
            self.runtime_config = write_config(
                d("runtime.json"), runtime=self.real_runtime, hook_dir=runtime_wrapper["hook_dir"],
                hook_config=runtime_wrapper["hook_config"])
            os.makedirs(d("wrapper"))
            self.runtime = d("wrapper", "vmm-cgroup-runtime")
            with open(self.runtime, "w") as f:
                f.write(WRAPPER_SHIM.format(config=self.runtime_config, wrapper=runtime_wrapper["path"],
                                            root=d("rt")))
            os.chmod(self.runtime, 0o755)
        self.conf = d("containers.conf")
        ulimits = ", ".join(f'"{u}"' for u in ULIMITS)
        with open(self.conf, "w") as f:
            f.write(f"""[containers]
default_ulimits = [{ulimits}]
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d('tmp', 'events.log')}"
lock_type = "file"
tmp_dir = "{d('tmp')}"
volume_path = "{d('volumes')}"
static_dir = "{d('root', 'libpod')}"
hooks_dir = ["{hooks_dir or d('no-hooks')}"]

[network]
network_config_dir = "{d('net')}"
""")
        self.storage_conf = d("storage.conf")
        with open(self.storage_conf, "w") as f:
            f.write(f"""[storage]
driver = "vfs"
graphroot = "{d('root')}"
runroot = "{d('runroot')}"
""")
        self.registries_conf = d("registries.conf")
        with open(self.registries_conf, "w") as f:
            f.write("unqualified-search-registries = []\n")
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": d("tmp"),
            "TMPDIR": d("tmpdir"),
            "CONTAINERS_CONF": self.conf,
            "CONTAINERS_STORAGE_CONF": self.storage_conf,
            "CONTAINERS_REGISTRIES_CONF": self.registries_conf,
            "LANG": "C.UTF-8",
        }
        self.containers = []

    def argv(self, *args):
        flags = ["podman", "--root", os.path.join(self.dir, "root"), "--runroot",
                 os.path.join(self.dir, "runroot"), "--tmpdir", os.path.join(self.dir, "tmp"),
                 "--storage-driver", "vfs", "--volumepath", os.path.join(self.dir, "volumes"),
                 "--network-config-dir", os.path.join(self.dir, "net"), "--cgroup-manager", "cgroupfs",
                 "--events-backend", "file", "--runtime", self.runtime,
                 # the runtime's state too (runc and crun default to /run/runc, /run/crun)
                 "--runtime-flag", "root=" + os.path.join(self.dir, "rt")]
        if self.hooks_dir:
            flags += ["--hooks-dir", self.hooks_dir]
        return flags + list(args)

    def __call__(self, *args, check=True, timeout=120):
        return run(self.argv(*args), check=check, timeout=timeout, env=self.env,
                   shown=["podman", "...", *(a if len(a) < 80 else a[:77] + "..." for a in args)])

    def run_detached(self, name, rootfs, command, annotate=True, devices=("/dev/kvm",), extra=()):
        """podman run -d; returns the container id. Every flag goes before --rootfs PATH."""
        args = ["run", "-d", "--name", name, "--network", "none"]
        for u in ULIMITS:
            args += ["--ulimit", u]
        if self.cgroup_parent:
            args += ["--cgroup-parent", self.cgroup_parent]
        if annotate:
            args += ["--annotation", f"{ANNOTATION}=true"]
        for dev in devices:
            args += ["--device", dev]
        args += list(extra)
        args += ["--rootfs", rootfs] + list(command)
        self.containers.append(name)
        out = self(*args, timeout=180)
        return out.stdout.strip().splitlines()[-1]

    def inspect(self, name):
        return json.loads(self("inspect", name).stdout)[0]

    def main_pid(self, name):
        pid = int(self.inspect(name)["State"]["Pid"])
        if pid <= 0:
            raise Failure(f"{name}: podman reports no pid (State.Pid={pid})")
        return pid

    def stop_rm(self, name, timeout=5):
        self("stop", "-t", str(timeout), name, timeout=120)
        self("rm", name, timeout=120)
        if name in self.containers:
            self.containers.remove(name)

    def mounts_below(self):
        return sorted((p for p, _, _ in _mountinfo() if p == self.dir or p.startswith(self.dir + "/")),
                      key=lambda p: p.count("/"), reverse=True)

    def teardown(self):
        """rm -f every container of this store, unmount what is left below workdir; the caller removes the
        dir. Returns a list of problems (never raises)."""
        problems = []
        try:
            out = self("ps", "-a", "-q", check=False, timeout=60)
            ids = out.stdout.split()
            if ids:
                r = self("rm", "-f", "-t", "0", *ids, check=False, timeout=120)
                if r.returncode != 0:
                    problems.append(f"podman rm -f: {r.stderr.strip()}")
        except Failure as e:
            problems.append(str(e))
        for point in self.mounts_below():
            r = run(["umount", point], check=False)
            if r.returncode != 0:
                r = run(["umount", "-l", point], check=False)
                if r.returncode != 0:
                    problems.append(f"umount {point}: {r.stderr.strip()}")
        return problems


def run_cases(selected, failure=Failure):
    """Runs each (name, function) of selected, printing PASS/FAIL lines as the suites' drivers read them;
    a broken case is a failure and the others still run. Returns how many failed."""
    import traceback
    failed = 0
    for name, func in selected:
        t0 = time.monotonic()
        try:
            func()
            print(f"PASS {name}", flush=True)
        except failure as e:
            failed += 1
            print(f"FAIL {name}: {e}", flush=True)
        except Exception as e:  # noqa: BLE001 - a broken case is a failure, the others still run
            failed += 1
            traceback.print_exc()
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
        log(f"  {name}: {time.monotonic() - t0:.1f}s")
    return failed


def make_workdir(tag=""):
    """/tmp/vmmcg-e2e-<tag>, new (mode 0700). Short on purpose: podman refuses a runroot over 50 characters."""
    path = os.path.join("/tmp", PREFIX + tag)
    os.mkdir(path, 0o700)
    return path


def remove_workdir(path):
    if path and os.path.basename(path).startswith(PREFIX):
        # never cross into a mount left below it
        for point in sorted((p for p, _, _ in _mountinfo() if p.startswith(path + "/")),
                            key=lambda p: p.count("/"), reverse=True):
            run(["umount", "-l", point], check=False)
        shutil.rmtree(path, ignore_errors=True)


def kill_pids(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def unique(n=6):
    return secrets.token_hex(n // 2)


# ----------------------------------------------------------------------------------------------------------
# KVM, QEMU


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def qemu_argv(accel, vcpus=4):
    """A VM that needs no guest: the firmware finds no boot device and idles, the vCPU threads exist."""
    return ["qemu-system-x86_64", "-accel", accel, "-machine", "q35", "-smp", str(vcpus), "-m", "128",
            "-name", "vm,debug-threads=on", "-nographic", "-nodefaults"]


def wait_until(predicate, timeout, interval=0.1):
    """Calls predicate() until it returns a true value (returned) or timeout seconds pass (returns the last
    value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def find_vmm(init_pid, name="qemu-system-x86_64"):
    """The VMM: the container's process itself or its first descendant running name."""
    for pid in [init_pid] + descendants(init_pid):
        if exe_name(pid) == name:
            return pid
    return None


# ----------------------------------------------------------------------------------------------------------
# Placement: where every thread is, and where it should be


class Layout:
    """Where the threads of one container's VMM belong.

    S: the container's cgroup (the same path in every v1 hierarchy with the cgroupfs manager: podman's
    State.CgroupPath); unified_s: its cgroup2 path on a hybrid host (where the runtime put it; the hooks leave
    the unified hierarchy alone); O: the overhead cgroup (split mode;
    overhead_cgroup(): <parent of S>/vmm-overhead-<instance> by default), else None. In cpu and cpuset (the
    hooks' overhead_controllers) the VMM's threads other than vCPUs belong in O; everywhere else in S."""

    def __init__(self, host, mode, s, unified_s, o):
        self.host, self.mode, self.s, self.unified_s, self.o = host, mode, s, unified_s, o

    def keys(self):
        keys = list(self.host.v1)
        if self.host.unified:
            keys.append("")
        return keys

    def expected(self, key, thread_name, is_vmm=True):
        if self.host.mode == "v2":
            if self.mode == "split" and is_vmm:
                return self.s + ("/vcpu" if is_vcpu(thread_name) else "/overhead")
            return self.s
        if key == "":
            return self.unified_s
        if self.mode == "split" and is_vmm and self.host.is_overhead_key(key) and not is_vcpu(thread_name):
            return self.o
        return self.s


def snapshot(pid, keys):
    """{tid: (name, {key: path})} for every thread of pid (threads that vanish meanwhile are left out)."""
    snap = {}
    for tid, name in threads(pid):
        try:
            cgs = proc_cgroups(pid, tid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        snap[tid] = (name, {k: cgs.get(k) for k in keys})
    return snap


def mismatches(layout, pid, is_vmm=True, snap=None):
    """["tid 123 'CPU 0/KVM' cpu: in X, expected Y", ...] for every thread of pid in every hierarchy."""
    snap = snapshot(pid, layout.keys()) if snap is None else snap
    if not snap:
        return [f"pid {pid}: no threads (gone?)"]
    bad = []
    for tid, (name, cgs) in sorted(snap.items()):
        for key in layout.keys():
            want = layout.expected(key, name, is_vmm)
            if cgs.get(key) != want:
                bad.append(f"tid {tid} {name!r} {key or 'unified'}: in {cgs.get(key)}, expected {want}")
    return bad


def placement_tree(host, pids, keys, label=None, group=False):
    """Lines showing, per hierarchy, each cgroup path and the threads (tid, name) of pids in it. label(key,
    path) may return a tag such as "S" or "O". group: hierarchies with the same placement share one tree,
    headed by all their names."""
    lines = []
    snaps = {pid: snapshot(pid, keys) for pid in pids}
    trees = []  # [([keys], {path: [(tid, name, pid)]})]
    for key in keys:
        by_path = {}
        for pid in pids:
            for tid, (name, cgs) in snaps[pid].items():
                by_path.setdefault(cgs.get(key), []).append((tid, name, pid))
        same = next((t for t in trees if group and t[1] == by_path), None)
        if same:
            same[0].append(key)
        else:
            trees.append(([key], by_path))
    for tree_keys, by_path in trees:
        key = tree_keys[0]
        lines.append(", ".join(k or "unified (cgroup2)" for k in tree_keys)
                     + ("" if group else f"  [{host.mountpoint(key)}]"))
        for path in sorted(by_path, key=lambda p: (p is None, p or "")):
            tag = label(key, path) if label else None
            lines.append(f"  {path}" + (f"   <- {tag}" if tag else ""))
            for tid, name, pid in sorted(by_path[path]):
                role = "vCPU" if is_vcpu(name) else ("process" if tid == pid else "thread")
                lines.append(f"      {tid:>7}  {name:<18} ({role} of pid {pid})")
    return lines


def hook_processes(marker):
    """pids of processes whose command line contains marker (e.g. a per-test config path): hooks, settlers."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            found.append(int(entry))
    return found


def overhead_candidates(host, s, cid, overhead_root=None):
    """Every O of container cid, of any instance, that exists: vmm-overhead-<cid>-* beside S (the parent of
    S) and, with overhead_root, <overhead_root>/<cid>-*, in every hierarchy. [(key, cgroup path)]."""
    found = []
    keys = list(host.v1) + ([""] if host.unified else [])
    patterns = []  # (parent cgroup, name prefix)
    if s:
        patterns.append((os.path.dirname(s.rstrip("/")), f"{OVERHEAD_PREFIX}{cid}-"))
    if overhead_root:
        patterns.append((overhead_root, f"{cid}-"))
    for key in keys:
        mount = host.mountpoint(key)
        for parent, name in patterns:
            base = os.path.join(mount, parent.strip("/"))
            for d in glob.glob(os.path.join(glob.escape(base), glob.escape(name) + "*")):
                if os.path.isdir(d):
                    found.append((key, "/" + os.path.relpath(d, mount)))
    return found


def leftovers_of(host, s, cid, record_dir, overhead_root=None):
    """What the hooks created for container cid that still exists: an O of any instance of cid in any
    hierarchy (beside S, and below overhead_root when given), its record (and temp files)."""
    left = [f"{key or 'unified'}: cgroup {path}" for key, path in overhead_candidates(host, s, cid, overhead_root)]
    if record_dir and os.path.isdir(record_dir):
        for name in os.listdir(record_dir):
            if cid in name:
                left.append(f"record {os.path.join(record_dir, name)}")
    return left


# ----------------------------------------------------------------------------------------------------------
# A session (the hooks, the rootfs, a temp dir) and scenarios (one VM container each)


class Session:
    """What every scenario of one run shares: the host, the installed hooks, the rootfs, the accelerator and
    a temp dir /tmp/vmmcg-e2e-<run>-*. close() removes everything the run created (never raises).

    via_wrapper: every scenario runs podman with --runtime set to the installed runtime wrapper (as a node
    owner would register it), no hooks.d files and no annotation: the wrapper adds the hooks with
    --gate=runtime. Otherwise the hooks are registered through oci-hooks.d and enabled by the annotation."""

    def __init__(self, prefix=None, build_dir=None, rootfs_cache=None, tag="", hook_log=False,
                 crun_hide="tmpfs", accel="auto", via_wrapper=False):
        self.hook_log = hook_log
        self.via_wrapper = via_wrapper
        self.crun_hide = crun_hide
        self.host = Host()
        # The runtimes' default state dirs: crun creates /run/crun even for `crun --version`, which podman
        # runs without --runtime-flag. Removed at the end when this run created them and they are empty.
        self.absent_state_dirs = [d for d in RUNTIME_STATE_DIRS if not os.path.exists(d)]
        self.run_id = unique()
        self.cg_prefix = f"{PREFIX}{self.run_id}-"
        self.dir = make_workdir(f"{self.run_id}{tag}")
        self.stores = 0
        try:
            self._setup(prefix, build_dir, rootfs_cache, accel)
        except BaseException:
            self.close()
            raise

    def _setup(self, prefix, build_dir, rootfs_cache, accel):
        self.kvm = kvm_usable() and accel != "tcg"
        if accel == "kvm" and not self.kvm:
            raise Failure("--accel kvm: /dev/kvm is not usable")
        self.accel = "kvm" if self.kvm else "tcg"
        if shutil.which("podman") is None:
            raise Failure("podman is not installed: the end-to-end suite needs it")
        if prefix:
            self.prefix = os.path.abspath(prefix)
            self.installed_by_us = False
        else:
            if not build_dir:
                raise Failure("give --prefix (a meson install prefix) or --build-dir (a meson build dir)")
            self.prefix = install_hooks(build_dir, os.path.join(self.dir, "destdir"))
            self.installed_by_us = True
        self.exes = hook_executables(self.prefix)
        self.wrapper = wrapper_executable(self.prefix) if self.via_wrapper else None
        sys.path.insert(0, HERE)
        import make_rootfs  # noqa: E402 (beside this file)
        self.rootfs = make_rootfs.build(rootfs_cache or os.path.join(self.dir, "rootfs"))

    def close(self):
        problems = remove_cgroups(self.host, self.cg_prefix, kill_pids)
        remove_workdir(self.dir)
        for d in self.absent_state_dirs:
            try:
                os.rmdir(d)
            except OSError:
                pass
        for point, _, _ in _mountinfo():
            if point == self.dir or point.startswith(self.dir + "/"):
                problems.append(f"still mounted: {point}")
        return problems


class Scenario:
    """One container through podman with the hooks: registered through hooks.d files written for it (the
    installed executables with --config <its own configuration>), or, in a via_wrapper session, added by
    the runtime wrapper (podman's --runtime) with --config <its configuration> --gate=runtime.

    runtime: "runc" or "crun"; mode: "split" or "sandbox-only" (the hooks' configuration); annotate: whether
    the container carries io.vmm-cgroup-hooks.enable=true (the wrapper needs none, so a via_wrapper session
    never annotates); opt_in: the configuration's "opt_in" for hooks.d registration ("annotation", what
    podman needs, or "runtime", the hooks' default, which ignores the annotation); launcher: the container's
    process is a shell that runs QEMU as its child; cpus: podman --cpus (the derived cap on O follows it);
    overhead_root: O below that node-wide root (overhead_parent "root") instead of beside S (the default).
    Every name it creates starts with <session.cg_prefix><name>-."""

    def __init__(self, session, name, runtime="runc", mode="split", annotate=True, launcher=False, vcpus=4,
                 overhead_root=None, opt_in="annotation", cpus=None, hook_log=None):
        self.s = session
        self.host = session.host
        self.name = name
        self.via_wrapper = session.via_wrapper
        annotate = annotate and not self.via_wrapper
        self.runtime, self.mode, self.annotate, self.launcher, self.vcpus = runtime, mode, annotate, launcher, vcpus
        self.opt_in, self.cpus = opt_in, cpus
        self.prefix = f"{session.cg_prefix}{name}-"
        self.container = self.prefix.rstrip("-")
        self.dir = os.path.join(session.dir, name)
        os.makedirs(self.dir)
        self.overhead_root = overhead_root
        self.cgroup_parent = f"/{self.prefix}parent"
        self.record_dir = os.path.join(self.dir, "records")
        keys = dict(mode=mode, record_dir=self.record_dir, settle_timeout_ms=30000, log_syslog=False,
                    log_level="debug")
        if not self.via_wrapper and opt_in == "annotation":
            # podman registers the hooks through oci-hooks.d, matched by the container's annotation: no
            # runtime handler adds them with --gate=runtime. podman's root user owns the node, so the
            # annotation, which only a container author sets, may enable them here (never on a shared
            # Kubernetes node, where the hooks' default, opt_in "runtime", ignores it).
            keys["opt_in"] = "annotation"
        if not session.kvm:
            # TCG: QEMU's vCPU threads hold no KVM vCPU fds, the proof the hooks ask for by default
            keys["vcpu_proof"] = "names"
        if overhead_root:
            keys.update(overhead_parent="root", overhead_root=overhead_root)
        self.config = write_config(os.path.join(self.dir, "config.json"), **keys)
        if hook_log is None:
            hook_log = session.hook_log
        self.hook_log = os.path.join(self.dir, "hooks.log") if hook_log else None
        session.stores += 1  # short path: podman refuses a runroot over 50 characters
        wrapper = None
        if self.via_wrapper:
            self.hooks_dir = None
            wrapper = {"path": session.wrapper, "hook_config": self.config,
                       "hook_dir": self._wrapped_hook_dir() if self.hook_log else os.path.dirname(session.exes["poststart"])}
        else:
            self.hooks_dir = write_hooks_dir(os.path.join(self.dir, "hooks.d"), session.exes, self.config,
                                             hook_log=self.hook_log)
        self.podman = Podman(os.path.join(session.dir, f"p{session.stores}"), self.host, runtime=runtime,
                             hooks_dir=self.hooks_dir, cgroup_parent=self.cgroup_parent,
                             crun_hide=session.crun_hide, runtime_wrapper=wrapper)
        self.cid = self.init_pid = self.vmm_pid = self.layout = None
        self.inspect = self.bundle = self.instance = None

    def _wrapped_hook_dir(self):
        """--hook-log through the wrapper: a hook_dir of shell scripts named as the hooks, which keep each
        hook's stderr and exec the installed one."""
        d = os.path.join(self.dir, "hooks")
        os.makedirs(d)
        for stage, exe in self.s.exes.items():
            path = os.path.join(d, os.path.basename(exe))
            with open(path, "w") as f:
                f.write(HOOK_LOG_WRAPPER.format(stage=stage, log=self.hook_log, exe=exe))
            os.chmod(path, 0o755)
        return d

    @property
    def enabled(self):
        """Whether the hooks act for this container: the wrapper's --gate=runtime, or the annotation where
        the configuration lets it count."""
        return self.via_wrapper or (self.annotate and self.opt_in == "annotation")

    # -- running

    def command(self):
        qemu = qemu_argv(self.s.accel, self.vcpus)
        if not self.launcher:
            return qemu
        # a shell that runs QEMU as its child (not exec: a command follows)
        return ["/bin/sh", "-c", " ".join(qemu) + "; echo qemu exited with $?"]

    def start(self, vmm_timeout=30):
        devices = ("/dev/kvm",) if self.s.kvm else ()
        extra = ("--cpus", str(self.cpus)) if self.cpus else ()
        self.cid = self.podman.run_detached(self.container, self.s.rootfs, self.command(),
                                            annotate=self.annotate, devices=devices, extra=extra)
        self.inspect = self.podman.inspect(self.container)
        # The OCI bundle: podman's per-container userdata dir, which holds config.json. The hooks name the
        # instance (record, O) after the id and the bundle path the runtime gives them.
        self.bundle = os.path.dirname(self.inspect.get("OCIConfigPath") or "")
        if not self.bundle.startswith("/"):
            raise Failure(f"podman inspect OCIConfigPath is {self.inspect.get('OCIConfigPath')!r}")
        self.instance = instance_name(self.cid, self.bundle)
        if self.via_wrapper:
            self.check_wrapped_spec()
        state = self.inspect["State"]
        self.init_pid = int(state["Pid"])
        if self.init_pid <= 0:
            logs = self.podman("logs", self.container, check=False)
            raise Failure(f"the container is not running (State.Status {state.get('Status')}, exit code "
                          f"{state.get('ExitCode')}); its output: {(logs.stdout + logs.stderr).strip()[-500:]!r}")
        # S: where podman's cgroupfs manager puts the container, <cgroup parent>/libpod-<id>. Not podman's
        # State.CgroupPath: podman derives that from the longest path in /proc/<pid>/cgroup, which is O
        # (vmm-overhead-<id>-<hash>, beside S) once the hooks moved the VMM there (podman_cgroup_note()).
        s = f"{self.cgroup_parent}/libpod-{self.cid}"
        self.podman_cgroup_path = state.get("CgroupPath") or ""
        if not self.podman_cgroup_path.startswith("/"):
            raise Failure(f"podman inspect State.CgroupPath is {self.podman_cgroup_path!r}")
        # Cross-check with where the runtime really put the container: the hierarchies the hooks never
        # change (cpuacct, memory, pids, ...). The launcher's shell is never moved, so it is S everywhere.
        init_cgs = proc_cgroups(self.init_pid)
        for key in self.host.v1:
            if (self.launcher or not self.host.is_overhead_key(key)) and init_cgs.get(key) != s:
                raise Failure(f"S is {s}, but the container's process {self.init_pid} is in "
                              f"{init_cgs.get(key)} in {key} (podman reports CgroupPath {self.podman_cgroup_path})")
        unified_s = None
        if self.host.mode == "hybrid":
            if self.podman.wrapped:
                # crun ran with the cgroup2 mount hidden: the container stays in conmon's cgroup2 cgroup
                unified_s = proc_cgroups(int(state["ConmonPid"])).get("")
            else:
                unified_s = s
        split = self.mode == "split" and self.enabled
        self.layout = Layout(self.host, "split" if split else "sandbox-only", s, unified_s,
                             overhead_cgroup(s, self.instance, self.overhead_root) if split else None)

        def vmm_ready():
            pid = find_vmm(self.init_pid)
            if pid and sum(1 for _, n in threads(pid) if is_vcpu(n)) >= self.vcpus:
                return pid
            return None
        self.vmm_pid = wait_until(vmm_ready, vmm_timeout)
        if not self.vmm_pid:
            logs = self.podman("logs", self.container, check=False).stdout.strip()[-600:]
            raise Failure(f"no qemu-system-x86_64 with {self.vcpus} vCPU threads after {vmm_timeout}s "
                          f"(container process {self.init_pid}: {threads(self.init_pid)[:3]}; logs: {logs!r})")
        return self

    def podman_cgroup_note(self):
        """What podman says the container's cgroup is, once placed, when that is not S (a NOTE, not a
        failure: podman takes the longest path of the process's /proc/<pid>/cgroup)."""
        path = self.podman.inspect(self.container)["State"].get("CgroupPath") or ""
        if path != self.layout.s:
            return f"podman inspect State.CgroupPath is {path}, not S {self.layout.s}"
        return None

    def check_wrapped_spec(self):
        """Through the wrapper: config.json got the three installed hooks (or the --hook-log scripts of
        their names), each with --config <this configuration> --gate=runtime, and no enable annotation."""
        spec = read_json(os.path.join(self.bundle, "config.json"))
        if spec is None:
            raise Failure(f"{self.bundle}/config.json: not readable")
        hooks = spec.get("hooks") or {}
        for stage, exe in self.s.exes.items():
            ours = [h for h in hooks.get(stage) or [] if os.path.basename(h.get("path", "")) == os.path.basename(exe)]
            if len(ours) != 1:
                raise Failure(f"config.json through the wrapper: {len(ours)} {stage} hooks of ours: {hooks.get(stage)}")
            if ours[0].get("args") != [ours[0]["path"], "--config", self.config, GATE_ARGUMENT]:
                raise Failure(f"config.json through the wrapper: {stage} hook args {ours[0].get('args')}")
        if ANNOTATION in (spec.get("annotations") or {}):
            raise Failure(f"config.json through the wrapper carries {ANNOTATION}={spec['annotations'][ANNOTATION]}")

    def placement_problems(self):
        bad = mismatches(self.layout, self.vmm_pid)
        if self.launcher:
            bad += [f"launcher shell: {b}" for b in mismatches(self.layout, self.init_pid, is_vmm=False)]
        return bad

    def wait_placed(self, timeout=30, stable=3):
        """Polls until the placement is right in `stable` consecutive looks; returns [] or the problems of
        the last look."""
        deadline = time.monotonic() + timeout
        good = 0
        while True:
            bad = self.placement_problems()
            good = good + 1 if not bad else 0
            if good >= stable:
                return []
            if time.monotonic() >= deadline:
                return bad or ["placement not stable"]
            time.sleep(0.1)

    def record_watcher(self):
        """The pid of the watcher the record names, or None (no record, or no watcher)."""
        try:
            with open(self.record_path()) as f:
                watcher = json.load(f).get("watcher")
        except (OSError, ValueError):
            return None
        return watcher.get("pid") if isinstance(watcher, dict) else None

    def hook_pids(self):
        """Hook processes of this scenario still running (the settler among them): they carry its --config."""
        return hook_processes(self.config)

    def overhead_problems(self):
        """split: O exists in the overhead hierarchies (cpu, cpuset) only, with S's cpuset and the derived
        cap (25% of the container's CPU limit, at least 250m; none without a limit), and no other O of this
        id; otherwise no O of this id exists and the overhead root was not created."""
        bad = []
        keys = list(self.host.v1) + ([""] if self.host.unified else [])
        found = overhead_candidates(self.host, self.layout.s, self.cid, self.overhead_root)
        if self.layout.o and self.host.mode != "v2":
            for key in keys:
                want = key != "" and self.host.is_overhead_key(key)
                if cgroup_exists(self.host, key, self.layout.o) != want:
                    bad.append(f"{key or 'unified'}: {self.layout.o} " + ("missing" if want else "exists"))
            bad += [f"{key or 'unified'}: another O {path}" for key, path in found if path != self.layout.o]
            bad += self.limit_problems()
        else:
            bad += [f"{key or 'unified'}: {path} was created" for key, path in found]
            if self.overhead_root:
                bad += [f"{key or 'unified'}: {self.overhead_root} was created" for key in keys
                        if cgroup_exists(self.host, key, self.overhead_root)]
        return bad

    def limit_problems(self):
        """O's cpuset is S's; S keeps the container's quota; O's quota is the derived cap."""
        bad = []

        def value(key, path, name):
            with open(os.path.join(self.host.cgroup_dir(key, path), name)) as f:
                return f.read().strip()
        cpuset = next((k for k in self.host.v1 if "cpuset" in k.split(",")), None)
        if cpuset:
            for name in ("cpuset.cpus", "cpuset.mems"):
                if value(cpuset, self.layout.o, name) != value(cpuset, self.layout.s, name):
                    bad.append(f"O's {name} {value(cpuset, self.layout.o, name)!r}, S's "
                               f"{value(cpuset, self.layout.s, name)!r}")
        cpu = next((k for k in self.host.v1 if "cpu" in k.split(",")), None)
        if cpu:
            s_quota = int(value(cpu, self.layout.s, "cpu.cfs_quota_us"))
            want_s = round(self.cpus * 100000) if self.cpus else -1
            if s_quota != want_s:
                bad.append(f"S's cpu.cfs_quota_us {s_quota}, expected {want_s} (--cpus {self.cpus})")
            o_quota = int(value(cpu, self.layout.o, "cpu.cfs_quota_us"))
            want_o = expected_overhead_cap(self.cpus)
            if o_quota != want_o:
                bad.append(f"O's cpu.cfs_quota_us {o_quota}, expected {want_o} (the derived cap for --cpus "
                           f"{self.cpus})")
        return bad

    def record_path(self):
        return os.path.join(self.record_dir, f"{self.instance}.json")

    def record_problems(self):
        """The record of a split container: version 2, its instance name, bundle and phase, O."""
        return record_problems(read_json(self.record_path()), self.cid, self.bundle, self.instance, self.layout.o)

    def record_text(self):
        try:
            with open(self.record_path()) as f:
                return f.read()
        except OSError as e:
            return f"(no record: {e.strerror})"

    def stop(self, how="stop", timeout=2):
        """Ends the container: "stop" (podman stop, then podman rm), "rm-f" (podman rm -f of the running
        container), "exit" (the caller has ended the VMM: wait for the container to exit by itself, so that
        poststop runs in conmon's exit command, `podman container cleanup`, then podman rm)."""
        if how == "stop":
            self.podman.stop_rm(self.container, timeout=timeout)
        elif how == "rm-f":
            self.podman("rm", "-f", "-t", str(timeout), self.container, timeout=120)
        elif how == "exit":
            exited = wait_until(lambda: self.podman("inspect", "--format", "{{.State.Status}}", self.container,
                                                    check=False).stdout.strip() in ("exited", "stopped"), 60)
            if not exited:
                raise Failure("the container did not exit after its VMM ended")
            # poststop ran (or runs) in conmon's exit command; give it its moment before podman rm
            wait_until(lambda: not self.leftovers(), 5)
            self.podman("rm", self.container, timeout=120)
        else:
            raise ValueError(how)
        if self.container in self.podman.containers:
            self.podman.containers.remove(self.container)

    def wait_clean(self, timeout=5):
        """[] once nothing the hooks created for this container remains, else what remains at timeout."""
        left = []

        def clean():
            left[:] = self.leftovers()
            return not left
        wait_until(clean, timeout)
        return left

    def leftovers(self):
        left = leftovers_of(self.host, self.layout.s if self.layout else None, self.cid, self.record_dir,
                            self.overhead_root)
        left += [f"hook process {p} still running: {cmdline(p)}" for p in self.hook_pids()]
        if self.vmm_pid and os.path.exists(f"/proc/{self.vmm_pid}") and exe_name(self.vmm_pid).startswith("qemu"):
            left.append(f"VMM {self.vmm_pid} still running")
        return left

    def close(self):
        """Removes the container, its store, its cgroups (parent and overhead root), its dir; returns
        problems, never raises."""
        problems = []
        try:
            problems += self.podman.teardown()
        except Exception as e:  # noqa: BLE001 - cleanup goes on
            problems.append(f"podman teardown: {e}")
        problems += remove_cgroups(self.host, self.prefix, kill_pids)
        for p in self.hook_pids():
            kill_pids([p])
        remove_workdir_below(self.dir)
        remove_workdir_below(self.podman.dir)
        return problems


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def remove_workdir_below(path):
    for point in sorted((p for p, _, _ in _mountinfo() if p.startswith(path + "/")),
                        key=lambda p: p.count("/"), reverse=True):
        run(["umount", "-l", point], check=False)
    shutil.rmtree(path, ignore_errors=True)
