#!/usr/bin/env python3
"""The Debian package, built, checked, installed for real, used and purged.

    python3 tests/package/test_package.py [--source-root DIR] [--work-dir DIR] [--keep-installed]

As root on Debian 12 with dpkg-dev, debhelper, lintian, ccache, the Build-Depends of debian/control,
podman, runc and mmdebstrap (scripts/setup installs them). Steps, each printed with its time:

1. build: the source tree is copied (git's tracked and untracked, not ignored, files; without git every
   file but build trees) to WORK/vmm-cgroup-hooks-VERSION and `dpkg-buildpackage -b -us -uc` runs there,
   so the .deb lands in WORK (default /tmp/vmmcg-pkg-build) and the source tree stays as it was. The build
   is the package's own (debian/rules, its flags, its build-time check); two things only make it cheaper:
   DEB_BUILD_OPTIONS=noautodbgsym (no -dbgsym package) and ccache with a cache kept in
   /var/cache/vmmcg-pkg-tests/ccache (or $VMMCG_PKG_CCACHE). WORK is always the same path, so the
   compiler's command lines repeat and a warm cache serves every unchanged file.
2. lintian: no error, warning or info tag, except the overrides of debian/*.lintian-overrides, each of
   which must follow a comment that explains it.
3. dpkg -i: every path of the table in docs/install.md ("| path | what |", brace lists expanded) is in the
   package and on the disk, and every file of the package is one of them or a file every Debian package has
   (copyright, changelog); the hook files name installed executables of /usr/libexec/vmm-cgroup-hooks; the
   hooks and the wrapper are static (no program interpreter: only libc's code is in them); the examples are
   the source's; no file in /etc and nothing created in /etc/vmm-cgroup-hooks or /run/vmm-cgroup-hooks (the
   package changes nothing by being installed); a systemd unit it ships is not enabled; each executable
   answers from its installed path: --version with the package's version, the wrapper (which passes
   --version on to the runtime) --wrapper-help naming its hook directory /usr/libexec/vmm-cgroup-hooks.
4. dpkg --purge, always (also when a step failed): the package is unknown to dpkg and no path of it that
   was not there before the install remains.
5. image: the DaemonSet's image built from the .deb with deploy/kubernetes/Containerfile (podman with runc,
   a store of its own in /var/cache/vmmcg-pkg-tests/podman; the base is Debian 12's minbase made once with
   mmdebstrap, and the image's apt-get installs kubectl: Debian's mirror is needed there), then its entry
   script's install and uninstall run in it against a host root directory (the files of that Debian 12
   minbase, with Debian's containerd config.toml): the host gets the package's hooks, wrapper and systemd
   helper (which starts with the host's own libsystemd) in /opt/vmm-cgroup-hooks and the handler, and after
   the uninstall the original file and nothing else of it; then again on that root without libsystemd:
   the helper is not copied, a line says so, the rest is installed and uninstalled. The engine is not restarted
   (RESTART_ENGINE=false) and no node is labelled: tests/deploy covers those steps with stubs.

Fails (exit 1) naming each problem; fails, not skips, when it cannot run (not root, a tool missing, the
package installed already, a file of the package already on the disk). It never leaves the package installed.
"""
import argparse
import fcntl
import filecmp
import glob
import gzip
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "vmm-cgroup-hooks"
LIBEXEC = "/usr/libexec/vmm-cgroup-hooks"
HOOKS_D = "/usr/share/containers/oci/hooks.d"
DOC = f"/usr/share/doc/{PACKAGE}"
DEFAULT_WORK = "/tmp/vmmcg-pkg-build"
CCACHE_ENV = "VMMCG_PKG_CCACHE"
DEFAULT_CCACHE = "/var/cache/vmmcg-pkg-tests/ccache"
# A podman store of the suite's own: the base image (mmdebstrap, Debian 12 minbase) is kept there.
PODMAN_ROOT = "/var/cache/vmmcg-pkg-tests/podman"
PODMAN_RUNROOT = "/run/vmmcg-pkg-tests-podman"
TOOLS = ["dpkg-buildpackage", "dpkg-checkbuilddeps", "dpkg-architecture", "dh", "lintian", "dpkg", "dpkg-deb",
         "ccache", "podman", "runc", "mmdebstrap"]
# Written by dh for every package (the lintian overrides: debian/*.lintian-overrides); not the project's to
# document.
DEBIAN_FILES = {f"{DOC}/copyright", f"{DOC}/changelog.gz", f"/usr/share/lintian/overrides/{PACKAGE}"}
# Directories the package creates that may be left by purge only if they were there before.
RUNTIME_DIRS = ["/etc/vmm-cgroup-hooks", "/run/vmm-cgroup-hooks"]


class Failure(Exception):
    pass


def log(text):
    print(text, flush=True)


def run(cmd, cwd=None, env=None, check=True, log_file=None):
    """Runs cmd; its output goes to log_file when given (its tail is printed on failure), else is returned."""
    if log_file:
        with open(log_file, "w") as out:
            p = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        if check and p.returncode != 0:
            with open(log_file) as f:
                tail = f.read().splitlines()[-40:]
            raise Failure(f"{' '.join(cmd)}: exit {p.returncode}; last lines of {log_file}:\n  "
                          + "\n  ".join(tail))
        return ""
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise Failure(f"{' '.join(cmd)}: exit {p.returncode}: {(p.stderr or p.stdout).strip()}")
    return p.stdout


class Step:
    """Prints a step's name and, at its end, how long it took."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.start = time.monotonic()
        log(f"== {self.name}")

    def __exit__(self, *exc):
        log(f"   {self.name}: {time.monotonic() - self.start:.1f} s" + (" (failed)" if exc[0] else ""))


def preflight():
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        raise Failure(f"cannot run: {', '.join(missing)} not found (scripts/setup installs them)")
    if os.geteuid() != 0:
        raise Failure("cannot run: dpkg -i needs root")
    if installed_status():
        raise Failure(f"cannot run: {PACKAGE} is installed already ({installed_status()}); this suite "
                      f"installs and purges it itself: `dpkg --purge {PACKAGE}` first, if it is yours")


def installed_status():
    p = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", PACKAGE], capture_output=True,
                       text=True)
    return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() not in ("", "un") else ""


def source_files(root):
    """The files a clone would have plus new ones (git), or every file but build trees (no git)."""
    if os.path.exists(os.path.join(root, ".git")):
        if not shutil.which("git"):
            raise Failure("cannot run: the source tree is a git tree and git is not found")
        out = run(["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        return [f for f in out.split("\0") if f and os.path.lexists(os.path.join(root, f))]
    files = []
    for top, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".git", "__pycache__")
                   and not os.path.exists(os.path.join(top, d, "meson-private"))]
        files += [os.path.relpath(os.path.join(top, n), root) for n in names]
    return files


def version(root):
    with open(os.path.join(root, "debian", "changelog")) as f:
        m = re.match(rf"{PACKAGE} \(([^)]+)\)", f.readline())
    if not m:
        raise Failure("debian/changelog: no version on its first line")
    return m.group(1)


def build(root, work, ver):
    """The package built in a copy of the tree under work; returns the .deb's path."""
    if os.path.isdir(work):
        shutil.rmtree(work)
    tree = os.path.join(work, f"{PACKAGE}-{ver}")
    for rel in source_files(root):
        src, dst = os.path.join(root, rel), os.path.join(tree, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    run(["dpkg-checkbuilddeps"], cwd=tree)
    ccache_dir = os.environ.get(CCACHE_ENV, DEFAULT_CCACHE)
    os.makedirs(ccache_dir, exist_ok=True)
    env = dict(os.environ,
               DEB_BUILD_OPTIONS=f"parallel={min(os.cpu_count() or 1, 2)} noautodbgsym",
               CCACHE_DIR=ccache_dir, CCACHE_BASEDIR=tree, CCACHE_MAXSIZE="2G")
    env.pop("MAKEFLAGS", None)
    run(["ccache", "--zero-stats"], env=env)
    run(["dpkg-buildpackage", "-b", "-us", "-uc"], cwd=tree, env=env, log_file=os.path.join(work, "build.log"))
    stats = run(["ccache", "--print-stats"], env=env)
    counts = dict(line.split("\t", 1) for line in stats.splitlines() if "\t" in line)
    hits = int(counts.get("direct_cache_hit", 0)) + int(counts.get("preprocessed_cache_hit", 0))
    log(f"   ccache: {hits} hits, {counts.get('cache_miss', '?')} misses ({ccache_dir})")
    with open(os.path.join(work, "build.log")) as f:
        if "build-time check: passed" not in f.read():
            raise Failure("the build-time check (debian/build-time-check) did not run")
    arch = run(["dpkg-architecture", "-qDEB_HOST_ARCH"]).strip()
    deb = os.path.join(work, f"{PACKAGE}_{ver}_{arch}.deb")
    if not os.path.isfile(deb):
        raise Failure(f"no {deb} after the build")
    shutil.rmtree(tree)  # its object files; the .deb, .changes and build.log stay in work
    return deb


def check_lintian(root, deb):
    """lintian clean, each override explained."""
    problems = []
    for path in glob.glob(os.path.join(root, "debian", "*lintian-overrides")):
        previous = ""
        for n, line in enumerate(open(path).read().splitlines(), 1):
            if line.strip() and not line.startswith("#") and not previous.startswith("#"):
                problems.append(f"{os.path.relpath(path, root)}:{n}: an override without a comment above it")
            previous = line if line.strip() else previous
    p = subprocess.run(["lintian", "--display-info", "--show-overrides", "--tag-display-limit", "0", deb],
                       capture_output=True, text=True)
    tags = [line for line in p.stdout.splitlines() if re.match(r"[EWIXPO]: ", line)]
    for line in tags:
        log(f"   {line}")
    problems += [f"lintian: {line}" for line in tags if line[0] in "EWI"]
    stderr = [line for line in p.stderr.splitlines() if "running with root privileges" not in line]
    if p.returncode != 0 or stderr:
        problems.append(f"lintian: exit {p.returncode}: {' | '.join(stderr)}")
    if not tags:
        log("   lintian: no tag")
    return problems


def deb_paths(deb):
    """{path: type letter} of the package's contents (d, -, l)."""
    paths = {}
    for line in run(["dpkg-deb", "--contents", deb]).splitlines():
        fields = line.split(None, 5)
        name = fields[5].split(" -> ")[0]
        path = "/" + name.lstrip("./").rstrip("/")
        if path != "/":
            paths[path] = fields[0][0]
    return paths


def documented_paths(root):
    """The paths of docs/install.md's package table, brace lists expanded."""
    with open(os.path.join(root, "docs", "install.md")) as f:
        text = f.read()
    start = text.index("| path | what |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows += re.findall(r"`(/[^`]+)`", line.split("|")[1])
    paths = []
    for row in rows:
        m = re.search(r"\{([^}]+)\}", row)
        paths += [row[:m.start()] + alt + row[m.end():] for alt in m.group(1).split(",")] if m else [row]
    if not paths:
        raise Failure("docs/install.md: no package table (| path | what |)")
    return paths


def has_interpreter(path):
    """Whether the ELF file asks for a program interpreter (PT_INTERP): a dynamically linked executable."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise Failure(f"{path}: not a 64-bit ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return any(struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 3 for i in range(phnum))


def read_doc(path):
    """A file of /usr/share/doc as installed, compressed by dh_compress or not."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    with gzip.open(path + ".gz") as f:
        return f.read()


def check_installed(root, deb, ver, contents):
    problems = []
    status = installed_status()
    if status != "ii":
        problems.append(f"dpkg status after dpkg -i: '{status}', not 'ii'")
    files = {p for p, kind in contents.items() if kind != "d"}
    documented = documented_paths(root)
    # dh_compress compresses a file of /usr/share/doc larger than 4 kB, outside examples/.
    documented = [p + ".gz" if p.startswith(DOC + "/") and p + ".gz" in files else p for p in documented]
    for path in documented:
        if path not in files:
            problems.append(f"docs/install.md names {path}: not in the package")
        elif not os.path.lexists(path):
            problems.append(f"{path}: in the package, not on the disk")
    for path in sorted(files - set(documented) - DEBIAN_FILES):
        problems.append(f"{path}: in the package, not in docs/install.md's table")
    for path in sorted(p for p in contents if p.startswith("/etc/")):
        problems.append(f"{path}: the package ships a file in /etc")
    conffiles = run(["dpkg-query", "-W", "-f", "${Conffiles}", PACKAGE]).strip()
    if conffiles:
        problems.append(f"conffiles: {conffiles}")

    executables = sorted(p for p in files if p.startswith(LIBEXEC + "/")) + ["/usr/sbin/vmm-cgroup-install"]
    for exe in executables:
        if not os.access(exe, os.X_OK):
            problems.append(f"{exe}: not executable")
            continue
        dynamic = has_interpreter(exe)
        should_be = os.path.basename(exe) in ("vmm-cgroup-install", "vmm-cgroup-systemd")
        if dynamic != should_be:
            problems.append(f"{exe}: {'dynamically' if dynamic else 'statically'} linked, "
                            f"docs/install.md says otherwise")
        # The wrapper passes --version to the runtime; its own answer is --wrapper-help, with its hook_dir.
        wrapper = os.path.basename(exe) == "vmm-cgroup-runtime"
        arg, expected = ("--wrapper-help", f"default {LIBEXEC}\n") if wrapper else ("--version", ver.split("-")[0])
        p = subprocess.run([exe, arg], capture_output=True, text=True, timeout=10)
        if p.returncode != 0 or expected not in p.stdout:
            problems.append(f"{exe} {arg}: exit {p.returncode}, '{(p.stdout + p.stderr).strip()[:300]}'")
        else:
            log(f"   {exe} {arg}: {p.stdout.strip().splitlines()[0]}")

    hook_files = sorted(p for p in files if p.startswith(HOOKS_D + "/"))
    if len(hook_files) != 3:
        problems.append(f"{HOOKS_D}: {len(hook_files)} hook files, not 3")
    for path in hook_files:
        with open(path) as f:
            hook = json.load(f)
        exe = hook.get("hook", {}).get("path", "")
        if hook.get("version") != "1.0.0" or not exe.startswith(LIBEXEC + "/") or not os.access(exe, os.X_OK):
            problems.append(f"{path}: version {hook.get('version')}, path '{exe}'")

    for name in ("config.json", "runtime.json", "README.md"):
        with open(os.path.join(root, "docs", "examples", name), "rb") as f:
            if read_doc(f"{DOC}/examples/{name}") != f.read():
                problems.append(f"{DOC}/examples/{name}: not docs/examples/{name}")
    json.loads(read_doc(f"{DOC}/examples/config.json"))

    for page in sorted(p for p in files if p.startswith("/usr/share/man/")):
        with gzip.open(page) as f:
            head = f.read(200)
        if not head.startswith((b".", b"'")):
            problems.append(f"{page}: not a man page")
    for alias in sorted(p for p, kind in contents.items() if kind == "l" and p.startswith("/usr/share/man/")):
        if not os.path.isfile(alias):
            problems.append(f"{alias}: a dangling link")

    units = sorted(p for p in contents if re.search(r"/systemd/system/[^/]+\.(service|timer|socket)$", p))
    for unit in units:
        enabled = glob.glob(f"/etc/systemd/system/*.wants/{os.path.basename(unit)}")
        if enabled:
            problems.append(f"{unit}: enabled by the install ({enabled[0]})")
    log(f"   systemd units: {', '.join(units) if units else 'none in this version'}")
    return problems


def check_purged(contents, before):
    problems = []
    status = installed_status()
    if status:
        problems.append(f"dpkg status after purge: '{status}'")
    for path in sorted(set(contents) | set(RUNTIME_DIRS)):
        if os.path.lexists(path) and not before.get(path, False):
            problems.append(f"{path}: left after dpkg --purge")
    for path in glob.glob(f"/var/lib/dpkg/info/{PACKAGE}.*"):
        problems.append(f"{path}: left after dpkg --purge")
    return problems


def podman(*args, check=True, log_file=None):
    return run(["podman", "--root", PODMAN_ROOT, "--runroot", PODMAN_RUNROOT, "--runtime", "runc", *args],
               check=check, log_file=log_file)


def check_image(root, deb, work):
    """The DaemonSet's image built from the .deb with deploy/kubernetes/Containerfile, and its entry script's
    install and uninstall run in it against a host root directory."""
    problems = []
    base = "localhost/vmmcg-debian-base:bookworm"
    exists = subprocess.run(["podman", "--root", PODMAN_ROOT, "--runroot", PODMAN_RUNROOT, "image", "exists",
                             base], capture_output=True)
    if exists.returncode != 0:  # once: Debian 12's minbase from the mirror, kept in the suite's store
        tar = os.path.join(work, "base.tar")
        run(["mmdebstrap", "--variant=minbase", "--quiet", "bookworm", tar], log_file=tar + ".log")
        podman("import", "-q", tar, base)
        os.remove(tar)
    context = os.path.join(work, "image")
    os.makedirs(context)
    shutil.copy2(deb, context)
    shutil.copy2(os.path.join(root, "deploy", "kubernetes", "vmm-cgroup-deploy"), context)
    image = "localhost/vmm-cgroup-hooks-deploy:test"
    try:
        podman("build", "--pull=never", "--build-arg", f"BASE={base}", "-t", image,
               "-f", os.path.join(root, "deploy", "kubernetes", "Containerfile"), context,
               log_file=os.path.join(work, "image-build.log"))
        # The host root: Debian 12's minbase (the base image's files, so that the systemd helper can be run
        # with a host's own loader and libsystemd), Debian's containerd config.toml, a runc to be found.
        host = os.path.join(work, "host")
        os.makedirs(host)
        holder = podman("create", "--pull=never", base, "/bin/true").strip()
        try:
            exported = os.path.join(work, "host.tar")
            podman("export", "-o", exported, holder)
        finally:
            podman("rm", "-f", holder, check=False)
        run(["tar", "-x", "-f", exported, "-C", host, "--exclude=dev/*"])
        os.remove(exported)
        config = os.path.join(host, "etc", "containerd", "config.toml")
        original = os.path.join(root, "tests", "data", "containerd", "debian-config.toml")
        os.makedirs(os.path.dirname(config))
        shutil.copy2(original, config)
        with open(os.path.join(host, "usr", "bin", "runc"), "w") as f:  # the runtime the installer looks for
            f.write("#!/bin/sh\n")
        os.chmod(os.path.join(host, "usr", "bin", "runc"), 0o755)
        unpacked = os.path.join(work, "unpacked")
        run(["dpkg-deb", "-x", deb, unpacked])
        copies = os.path.join(host, "opt", "vmm-cgroup-hooks", "libexec", "vmm-cgroup-hooks")
        helper = os.path.join(copies, "vmm-cgroup-systemd")

        def entry(command, tag):
            # podman's fixed limits are above what this host lets runc set (as in tests/e2e)
            log_file = os.path.join(work, f"image-{command}-{tag}.log")
            podman("run", "--rm", "--network", "none", "--ulimit", "nofile=20000:20000", "--ulimit",
                   "nproc=32768:32768", "-v", f"{host}:/host", "-e", "ENGINE=containerd",
                   "-e", "RESTART_ENGINE=false", image, command, log_file=log_file)
            with open(log_file) as f:
                return f.read()

        def uninstall(tag):
            entry("uninstall", tag)
            if not filecmp.cmp(config, original, shallow=False):
                problems.append(f"image uninstall ({tag}): config.toml is not the original")
            for left in ("etc/containerd/config.toml.vmmcg-backup", "etc/vmm-cgroup-hooks",
                         "opt/vmm-cgroup-hooks"):
                if os.path.lexists(os.path.join(host, left)):
                    problems.append(f"image uninstall ({tag}): /{left} left on the host root")

        entry("install", "debian-host")
        for name in ("vmm-cgroup-create-runtime", "vmm-cgroup-poststart", "vmm-cgroup-poststop",
                     "vmm-cgroup-runtime", "vmm-cgroup-systemd"):
            copy = os.path.join(copies, name)
            if not os.path.exists(copy):
                problems.append(f"image install: {name} was not copied to a Debian 12 host")
            elif not filecmp.cmp(copy, unpacked + f"{LIBEXEC}/{name}", shallow=False):
                problems.append(f"image install: {name} on the host is not the package's")
        ctl = os.path.join(host, "opt", "vmm-cgroup-hooks", "sbin", "vmm-cgroupctl")
        if not os.path.exists(ctl) or not filecmp.cmp(ctl, unpacked + "/usr/sbin/vmm-cgroupctl", shallow=False):
            problems.append("image install: vmm-cgroupctl on the host is not the package's")
        wrapper = '"/opt/vmm-cgroup-hooks/libexec/vmm-cgroup-hooks/vmm-cgroup-runtime"'
        if f"BinaryName = {wrapper}" not in open(config).read():
            problems.append("image install: config.toml has no handler with the copied wrapper")
        uninstall("debian-host")

        # A host whose libraries the helper cannot start with (here: no libsystemd at all): the hooks and
        # the wrapper are copied, the helper is not, and the pod's log says so.
        for lib in glob.glob(os.path.join(host, "usr", "lib", "*", "libsystemd.so.0*")):
            os.remove(lib)
        said = entry("install", "no-libsystemd")
        if os.path.lexists(helper) or glob.glob(os.path.join(copies, ".vmm-cgroup-systemd*")):
            problems.append("image install: the helper was copied to a host it cannot start on")
        if "vmm-cgroup-systemd not copied" not in said:
            problems.append("image install: no line says that the helper was not copied")
        if not os.path.exists(os.path.join(copies, "vmm-cgroup-poststart")):
            problems.append("image install: without the helper, the hooks were not copied either")
        uninstall("no-libsystemd")
    finally:
        podman("rmi", "-f", image, check=False)
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-root", default=os.path.dirname(os.path.dirname(HERE)))
    parser.add_argument("--work-dir", default=DEFAULT_WORK, help=f"where the package is built ({DEFAULT_WORK})")
    args = parser.parse_args()
    root = os.path.abspath(args.source_root)
    start = time.monotonic()
    problems = []
    try:
        preflight()
        ver = version(root)
        os.makedirs(os.path.dirname(args.work_dir.rstrip("/")), exist_ok=True)
        lock = open(args.work_dir.rstrip("/") + ".lock", "w")
        fcntl.flock(lock, fcntl.LOCK_EX)  # one run at a time builds in work
        with Step("build (dpkg-buildpackage -b)"):
            deb = build(root, args.work_dir, ver)
        with Step("lintian"):
            problems += check_lintian(root, deb)
        contents = deb_paths(deb)
        before = {p: os.path.lexists(p) for p in list(contents) + RUNTIME_DIRS}
        clobbered = [p for p, kind in contents.items() if kind != "d" and before[p]]
        if clobbered:
            raise Failure(f"cannot run: {clobbered[0]} (and {len(clobbered) - 1} more files of the package) "
                          f"exist already, and the install and purge would replace and remove them")
        try:
            with Step("dpkg -i"):
                run(["dpkg", "-i", deb], log_file=os.path.join(args.work_dir, "dpkg-install.log"))
                problems += check_installed(root, deb, ver, contents)
            # The podman end-to-end suite, once, against what the package installed (no build tree).
            with Step("e2e against the installed package (tests/e2e/test_e2e.py --prefix /usr)"):
                e2e = subprocess.run([sys.executable, os.path.join(root, "tests", "e2e", "test_e2e.py"),
                                      "--prefix", "/usr"], capture_output=True, text=True, timeout=900)
                for line in e2e.stdout.splitlines():
                    if line.startswith(("PASS", "FAIL")):
                        log(f"  e2e: {line}")
                if e2e.returncode != 0:
                    problems.append(f"the e2e suite against the installed package: exit {e2e.returncode}: "
                                    + " ".join(line for line in e2e.stdout.splitlines()
                                               if line.startswith("FAIL"))[:2000])
        finally:
            with Step("dpkg --purge"):
                p = subprocess.run(["dpkg", "--purge", PACKAGE], capture_output=True, text=True)
                if p.returncode != 0:
                    problems.append(f"dpkg --purge: exit {p.returncode}: {p.stderr.strip()}")
                problems += check_purged(contents, before)
        with Step("image (deploy/kubernetes/Containerfile, vmm-cgroup-deploy install and uninstall)"):
            problems += check_image(root, deb, args.work_dir)
    except Failure as e:
        problems.append(str(e))
    except Exception as e:  # a bug here, or a file of the package not as expected: named, not a traceback
        problems.append(f"{type(e).__name__}: {e}")
    for problem in problems:
        log(f"FAIL {problem}")
    log(f"{'FAIL' if problems else 'PASS'} package ({time.monotonic() - start:.0f} s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
