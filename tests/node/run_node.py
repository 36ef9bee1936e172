#!/usr/bin/env python3
"""The production node: podman with crun and runc on pure cgroup v2 with systemd, in a booted Debian 12 guest.

    python3 tests/node/run_node.py --build-dir build [--cases LIST] [--cache-dir DIR] [-v] [--keep]

Boots Debian 12 (systemd, podman, crun, runc, conmon; built with mmdebstrap and cached) on Debian's 6.1 kernel
under QEMU/TCG with `systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all`. The hooks reach the guest as
`meson install --destdir` puts them with prefix /usr. A test unit in the guest (guest.sh) drives the container
lifecycle through the real podman and prints VMMCG-RESULT lines on the serial console; this side asserts
that every expected result came and passed. Exit status 0 only then. See README.md next to this file.
"""
import argparse
import base64
import concurrent.futures
import fcntl
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "v2guest"))
import run_v2_guest as v2  # noqa: E402  (the kernel package lookup, the cpio writer, console escapes)

PREFIX = "vmmcg-node-"
CACHE_ENV = "VMMCG_NODE_CACHE"
DEFAULT_CACHE = "/var/cache/vmmcg-node-tests"
CONFIG_PATH = "/etc/vmm-cgroup-hooks/config.json"

# ---------------------------------------------------------------------------------------------------------
# The cases. Each prints `VMMCG-RESULT PASS|FAIL <case>/<check>: detail`; every check listed here must come,
# or the case fails ("missing"). The guest may print more (they count like any other).

NOTHING_LEFT = ["left-nothing"]
# vmm-cgroupctl in the guest; ctl-json and ctl-prometheus are made here, from what the guest sent (check_data)
CTL_CHECKS = ["ctl-status", "ctl-status-json", "ctl-status-prometheus", "ctl-json", "ctl-prometheus",
              "ctl-reconcile", "reconciled-placement"]
STARTED = ["run", "placement", "limits"]
PER_RUNTIME = {
    # podman run --cpus 1.5, placement thread by thread, podman pause/unpause, podman stop, podman rm
    # and vmm-cgroupctl on the placed container (status, its JSON and metrics checked here, reconcile)
    "run": STARTED + ["record", "only-watcher"] + CTL_CHECKS + ["pause", "paused-frozen", "unpause", "unpaused-thawed",
                      "unpaused-placement", "stop", "stop-left-nothing", "rm"] + NOTHING_LEFT + ["poststop-line"],
    # podman update --cpus 1: an in-place resize; then podman rm -f of the running container
    "update": STARTED + ["update", "update-vcpu-limit", "update-S-uncapped", "update-overhead-cap",
                         "update-placement", "rm-f"]
              + NOTHING_LEFT,
    # with "watch_vmm": false: systemctl daemon-reload, systemctl set-property --runtime <scope> TasksMax=4000,
    # and systemd's own view of the scope's quota; podman rm -f
    "reload": STARTED + ["no-watcher", "placed-systemd-quota",
                         "daemon-reload", "daemon-reload-S-uncapped", "daemon-reload-systemd-quota",
                         "daemon-reload-vcpu-limit", "daemon-reload-placement",
                         "set-property", "set-property-S-uncapped", "set-property-systemd-quota",
                         "set-property-vcpu-limit", "set-property-placement", "rm-f"] + NOTHING_LEFT,
    # --pid host: not split on v2 (the runtime's kill-all would read S's threaded children); stop and rm work
    "pidhost": ["run", "not-split", "stop", "stop-left-nothing", "rm"] + NOTHING_LEFT,
    "kill": STARTED + ["kill", "exited", "kill-left-nothing", "rm"] + NOTHING_LEFT,
    # the VMM exits by itself (its launcher shell ends the container after it)
    "exit": STARTED + ["vmm-exited", "exited", "exit-left-nothing", "rm"] + NOTHING_LEFT,
    # podman --cgroup-manager cgroupfs on the same guest
    "cgroupfs": STARTED + ["stop", "stop-left-nothing", "rm"] + NOTHING_LEFT,
}
RUNTIMES = ("crun", "runc")
CASES = {f"{runtime}-{name}": checks for runtime in RUNTIMES for name, checks in PER_RUNTIME.items()}
# the hooks' lines under `journalctl -t vmm-cgroup-hooks` (of the last container; one of its own if none ran)
CASES["journal"] = ["journal-identifier", "journal-container-id", "journal-stage"]
# runc, so that the settler is used: it must survive `systemctl stop` of the unit that ran podman
CASES["settler-unit"] = ["run", "settler-running", "unit-stop", "settler-survives", "placement", "limits",
                         "rm-f"] + NOTHING_LEFT

# Before any case: the guest is pure cgroup v2, the hooks are installed, the container image imported.
BOOT_CHECKS = ["pure-v2", "hooks-installed", "man-pages", "image"]
# After every case: nothing of any container is left (no hook process, record, vcpu/overhead cgroup, VMM),
# and no vmm-cgroup-hooks-*.scope unit.
END_CHECKS = ["nothing-left", "no-hooks-scope"]
# The man pages the guest must have when the build made them (scdoc found)
MAN_PAGES = ("vmm-cgroup-hooks.8", "vmm-cgroupctl.8")

RESULT = re.compile(r"VMMCG-RESULT (PASS|FAIL) ([^\s:/]+)/([^\s:]+)(?:: (.*))?")
CASE_END = re.compile(r"VMMCG-CASE-END (\S+) (\d+)s")
INFO = re.compile(r"VMMCG-(INFO|EVIDENCE) (.*)")
BOOTED = re.compile(r"VMMCG-BOOTED (\S+)")
DATA = re.compile(r"VMMCG-DATA (\S+) (\S+) (\S+)")
SCHEMA = os.path.join(SOURCE_ROOT, "docs", "ctl-status.schema.json")


class Failure(Exception):
    pass


def log(message):
    print(f"run_node: {message}", flush=True)


def run(args, **kwargs):
    result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    if result.returncode != 0:
        raise Failure(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-4000:]}")
    return result.stdout


class Lock:
    """An exclusive flock on a file in the cache, held while the kernel or image is built."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_):
        os.close(self.fd)


# ---------------------------------------------------------------------------------------------------------
# The kernel: Debian's 6.1 package (the one tests/v2guest boots), with the modules the root disk needs.

# In load order: virtio-blk and ext4 are modules in Debian's kernel.
MODULES = ("virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "virtio_blk",
           "crc16", "mbcache", "jbd2", "crc32c_generic", "ext4")


def kernel_complete(directory):
    return all(os.path.isfile(os.path.join(directory, f)) for f in ("vmlinuz", "config")) and \
        all(os.path.isfile(os.path.join(directory, "modules", m + ".ko")) for m in MODULES)


def get_kernel(cache):
    """The cache directory holding vmlinuz, config, modules/<name>.ko (and vmlinux once extracted)."""
    root = os.path.join(cache, "kernel")
    try:
        name, version = v2.kernel_package()
    except v2.Failure as e:
        found = sorted((os.path.join(root, d) for d in (os.listdir(root) if os.path.isdir(root) else [])
                        if kernel_complete(os.path.join(root, d))), key=os.path.getmtime)
        if not found:
            raise Failure(str(e)) from e
        log(f"{e}; using the cached {os.path.basename(found[-1])}")
        return found[-1]
    target = os.path.join(root, f"{name}_{version}")
    if kernel_complete(target):
        log(f"kernel: {name} {version} (cached)")
        return target
    with Lock(os.path.join(cache, "kernel.lock")):
        if kernel_complete(target):
            return target
        started = time.monotonic()
        os.makedirs(root, exist_ok=True)
        download = tempfile.mkdtemp(prefix=PREFIX + "download-", dir=root)
        try:
            # apt-get warns that it downloads "unsandboxed as root" when _apt cannot write here: harmless.
            out = subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=download,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            debs = [f for f in os.listdir(download) if f.endswith(".deb")]
            if out.returncode != 0 or len(debs) != 1:
                raise Failure(f"apt-get download {name}={version} failed (apt-get update first?):\n{out.stdout}")
            unpack = os.path.join(download, "unpacked")
            os.makedirs(os.path.join(unpack, "modules"))
            release = name[len("linux-image-"):]
            wanted = {f"./boot/vmlinuz-{release}": "vmlinuz", f"./boot/config-{release}": "config"}
            modules = {m + ".ko" for m in MODULES}
            with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", os.path.join(download, debs[0])],
                                  stdout=subprocess.PIPE) as deb:
                with tarfile.open(fileobj=deb.stdout, mode="r|") as tar:
                    for member in tar:
                        base = os.path.basename(member.name)
                        if member.name in wanted:
                            dest = wanted[member.name]
                        elif member.name.startswith(f"./lib/modules/{release}/kernel/") and base in modules:
                            dest = os.path.join("modules", base)
                        else:
                            continue
                        with tar.extractfile(member) as src, open(os.path.join(unpack, dest), "wb") as dst:
                            shutil.copyfileobj(src, dst)
                deb.stdout.close()
            if deb.returncode != 0:
                raise Failure(f"dpkg-deb --fsys-tarfile {debs[0]} failed")
            if not kernel_complete(unpack):
                raise Failure(f"{debs[0]} lacks vmlinuz, config or one of the modules {', '.join(MODULES)}")
            os.rename(unpack, target)
        finally:
            shutil.rmtree(download, ignore_errors=True)
        log(f"kernel: {name} {version} downloaded and cached in {target} ({time.monotonic() - started:.1f} s)")
    return target


def elf_has_pvh_note(data):
    """Whether the ELF64 image carries XEN_ELFNOTE_PHYS32_ENTRY, the entry point QEMU's PVH boot needs."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", data,
                                                                                 phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, n_type = struct.unpack_from("<III", data, pos)
            name = data[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and n_type == 18:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def extract_vmlinux(kernel_dir):
    """The uncompressed ELF kernel cut out of the bzImage (boot protocol 2.08+: payload_offset/length), so
    that QEMU boots it through its PVH entry and TCG does not spend seconds in the decompressor. None when
    the payload is in a format this does not know or has no PVH note (then the bzImage boots)."""
    vmlinux = os.path.join(kernel_dir, "vmlinux")
    if os.path.isfile(vmlinux):
        return vmlinux
    with open(os.path.join(kernel_dir, "vmlinuz"), "rb") as f:
        data = f.read()
    version, = struct.unpack_from("<H", data, 0x206)
    if data[0x202:0x206] != b"HdrS" or version < 0x208:
        return None
    setup_sects = data[0x1f1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    payload = data[(setup_sects + 1) * 512 + offset:][:length]
    if payload.startswith(b"\xfd7zXZ\x00"):
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(b"\x1f\x8b"):
        elf = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
    else:
        return None
    if not elf_has_pvh_note(elf):
        return None
    with open(vmlinux + ".tmp", "wb") as f:
        f.write(elf)
    os.rename(vmlinux + ".tmp", vmlinux)
    return vmlinux


# ---------------------------------------------------------------------------------------------------------
# The root image: mmdebstrap, customize.sh, mkfs.ext4 -d. Cached under a key of everything that goes in.

PACKAGES = ("systemd", "systemd-sysv", "dbus", "podman", "crun", "runc", "conmon",
            "golang-github-containers-common", "iproute2", "procps", "kmod")
SUITE = "bookworm"
MIRROR = os.environ.get("VMMCG_NODE_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("VMMCG_NODE_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
SOURCES = (f"deb {MIRROR} {SUITE} main", f"deb {MIRROR} {SUITE}-updates main",
           f"deb {SECURITY_MIRROR} {SUITE}-security main")
# dpkg without fsync (the tree is packed into an image right after); no docs or locales (Debian's man pages
# too: the project's own come with the payload, outside dpkg).
DPKG_OPTIONS = ("force-unsafe-io", "path-exclude=/usr/share/doc/*", "path-exclude=/usr/share/locale/*",
                "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/info/*")
IMAGE_FREE_MB = 1024  # room for podman's vfs storage and the journal; the file is sparse
IMAGE_FORMAT = 1  # bump when the way the image is made changes outside the inputs hashed below


def image_key():
    with open(os.path.join(HERE, "customize.sh"), "rb") as f:
        customize = f.read()
    what = json.dumps({"format": IMAGE_FORMAT, "packages": PACKAGES, "suite": SUITE, "sources": SOURCES,
                       "dpkg": DPKG_OPTIONS, "free_mb": IMAGE_FREE_MB,
                       "customize": hashlib.sha256(customize).hexdigest()}, sort_keys=True)
    return hashlib.sha256(what.encode()).hexdigest()[:16]


def scratch_dir(cache):
    """Where the root tree is assembled: a tmpfs when it has room (dpkg is 2x faster there), else the cache."""
    try:
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize > 4 << 30:
            return "/dev/shm"
    except OSError:
        pass
    return cache


def get_image(cache, rebuild=False):
    """(path of rootfs.ext4, its package manifest); builds it when missing."""
    key = image_key()
    images = os.path.join(cache, "image")
    target = os.path.join(images, key)
    image = os.path.join(target, "rootfs.ext4")
    if os.path.isfile(image) and not rebuild:
        log(f"image: {key} (cached)")
        return image, os.path.join(target, "packages.txt")
    missing = [tool for tool in ("mmdebstrap", "mkfs.ext4") if not shutil.which(tool)]
    if missing:
        raise Failure(f"{', '.join(missing)} not found (apt-get install mmdebstrap e2fsprogs)")
    with Lock(os.path.join(cache, "image.lock")):
        if os.path.isfile(image) and not rebuild:
            return image, os.path.join(target, "packages.txt")
        started = time.monotonic()
        debs = os.path.join(cache, "debs")
        os.makedirs(debs, exist_ok=True)
        cached_debs = len([f for f in os.listdir(debs) if f.endswith(".deb")])
        work = tempfile.mkdtemp(prefix=PREFIX + "image-", dir=scratch_dir(cache))
        try:
            root = os.path.join(work, "root")
            manifest = os.path.join(work, "packages.txt")
            args = ["mmdebstrap", "--variant=apt", "--mode=root", "--format=directory",
                    "--include=" + ",".join(PACKAGES),
                    "--aptopt=APT::Install-Recommends \"false\"",
                    # The package cache survives clean clones: debs are synced in before apt runs and out
                    # after, and mmdebstrap does not delete what was there before.
                    "--skip=essential/unlink",
                    "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives",
                    f"--setup-hook=sync-in {debs} /var/cache/apt/archives",
                    f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
                    f"--customize-hook=sh {os.path.join(HERE, 'customize.sh')} \"$1\"",
                    "--customize-hook=chroot \"$1\" dpkg-query -W -f '${Package} ${Version}\\n' > " + manifest]
            args += [f"--dpkgopt={o}" for o in DPKG_OPTIONS]
            args += [SUITE, root, *SOURCES]
            log(f"image: building {key} with mmdebstrap ({cached_debs} packages cached in {debs}; "
                f"about 1 minute with them, 2-3 without)")
            out = subprocess.run(["nice", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if out.returncode != 0:
                raise Failure(f"mmdebstrap failed:\n{out.stdout[-6000:]}")
            built = time.monotonic()
            size_mb = int(run(["du", "-sm", root]).split()[0]) + IMAGE_FREE_MB
            staging = os.path.join(work, "rootfs.ext4")
            run(["mkfs.ext4", "-q", "-F", "-L", "vmmcg-node", "-d", root, staging, f"{size_mb}M"])
            os.makedirs(images, exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            os.makedirs(target)
            shutil.copy(manifest, os.path.join(target, "packages.txt"))
            # Copied sparse into the cache (it may be on another file system than the scratch dir).
            run(["cp", "--sparse=always", staging, image + ".tmp"])
            os.rename(image + ".tmp", image)
            # Older images are of no more use: a change of the inputs made this one.
            for old in os.listdir(images):
                if old != key:
                    shutil.rmtree(os.path.join(images, old), ignore_errors=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log(f"image: {key} built in {time.monotonic() - started:.1f} s (mmdebstrap {built - started:.1f} s, "
            f"{size_mb} MB ext4)")
    return image, os.path.join(target, "packages.txt")


# ---------------------------------------------------------------------------------------------------------
# The payload: what one run brings into the guest (through the initramfs, copied over the root at boot).


# What every image has (libc6, libstdc++6 and libgcc-s1 come with apt): a hook may need no other library.
GUEST_LIBRARIES = ("libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "ld-linux", "libstdc++.so",
                   "libgcc_s.so",
                   # the systemd helper's libsystemd0 and what it links: every Debian image with systemd has them
                   "libsystemd.so", "libcap.so", "libgcrypt.so", "liblzma.so", "libzstd.so", "liblz4.so",
                   "libgpg-error.so")


def install_hooks(build, work):
    """`meson install --destdir` with prefix /usr of what `build` built: a twin of the build directory is
    configured with --prefix=/usr (configure_file output such as the hook files depends on the prefix), the
    build's own outputs are copied into it, and meson installs from there without building anything. So the
    guest gets exactly the executables under test, where and how meson installs them."""
    options = {o["name"]: o["value"] for o in json.loads(run(["meson", "introspect", "--buildoptions", build]))}
    if options.get("default_config") != CONFIG_PATH:
        raise Failure(f"{build} is configured with default_config={options.get('default_config')}; "
                      f"the guest writes its configuration to {CONFIG_PATH}")
    if options.get("b_sanitize", "none") != "none":
        raise Failure(f"{build} is a sanitizer build (b_sanitize={options['b_sanitize']}): the guest has no "
                      f"sanitizer runtimes; run the node suite from a normal build")
    twin = os.path.join(work, "usr-build")
    run(["meson", "setup", "--prefix=/usr", "-Dtests=false", f"-Ddefault_config={CONFIG_PATH}",
         twin, SOURCE_ROOT])
    plan = json.loads(run(["meson", "introspect", "--installed", twin]))
    copied = 0
    for built in plan:
        if not os.path.isabs(built):
            continue  # an install_symlink (the hooks' man page aliases): meson install makes it
        if os.path.exists(built):
            continue  # made at configure time with prefix /usr (the hooks.d files)
        source = os.path.join(build, os.path.relpath(built, twin))
        if not os.path.exists(source):
            raise Failure(f"{source} is not built (ninja -C {build})")
        os.makedirs(os.path.dirname(built), exist_ok=True)
        shutil.copy2(source, built)
        copied += 1
    destdir = os.path.join(work, "destdir")
    run(["meson", "install", "-C", twin, "--no-rebuild", "--quiet", "--strip", "--destdir", destdir])
    # systemd's pkg-config puts units in /lib/systemd/system (Debian 12): the guest's /lib is a symbolic link
    # to usr/lib (merged /usr), onto which the initramfs' cp -a cannot copy a directory
    for top in ("lib", "bin", "sbin"):
        outside = os.path.join(destdir, top)
        if os.path.isdir(outside) and not os.path.islink(outside):
            shutil.copytree(outside, os.path.join(destdir, "usr", top), symlinks=True, dirs_exist_ok=True)
            shutil.rmtree(outside)
    installed = sorted(os.path.relpath(os.path.join(d, f), destdir) for d, _, fs in os.walk(destdir) for f in fs)
    for needed in ("usr/share/containers/oci/hooks.d", "usr/libexec/vmm-cgroup-hooks"):
        if not any(p.startswith(needed + "/") for p in installed):
            raise Failure(f"meson install put nothing into /{needed}: {installed}")
    for path in installed:
        if path.startswith("usr/libexec/"):
            extra = [lib for lib in v2.libraries(os.path.join(destdir, path))
                     if not os.path.basename(lib).startswith(GUEST_LIBRARIES)]
            if extra:
                raise Failure(f"/{path} needs {', '.join(extra)}, which the guest's image does not have "
                              f"(configure with -Dstatic_deps=true, the default)")
    log(f"hooks: meson install --destdir, prefix /usr: {len(installed)} files ({copied} from {build})")
    return destdir, installed


def vmm_image_tar(build):
    """The container image's root: busybox-static with its applets and the static test VMM. Imported in
    the guest with `podman import` (no registry)."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    if v2.libraries(busybox):
        raise Failure(f"{busybox} is dynamically linked: install busybox-static")
    test_vmm = os.path.join(build, "tests", "test-vmm")
    if v2.libraries(test_vmm):
        raise Failure(f"{test_vmm} is dynamically linked")
    out = io.BytesIO()

    def add(name, data=None, mode=0o755, link=None, directory=False):
        info = tarfile.TarInfo(name)
        info.mode = mode
        if directory:
            info.type = tarfile.DIRTYPE
        elif link:
            info.type, info.linkname = tarfile.SYMTYPE, link
        else:
            info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if data is not None else None)

    with tarfile.open(fileobj=out, mode="w") as tar:
        for d in ("bin", "dev", "proc", "sys", "tmp", "etc", "run", "var", "root"):
            add(d, directory=True, mode=0o1777 if d == "tmp" else 0o755)
        with open(busybox, "rb") as f:
            add("bin/busybox", f.read())
        for applet in run([busybox, "--list"]).split():
            if applet != "busybox":
                add(f"bin/{applet}", link="busybox")
        with open(test_vmm, "rb") as f:
            add("bin/test-vmm", f.read())
        add("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        add("etc/group", b"root:x:0:\n", 0o644)
    return out.getvalue()


# The guest boots straight into this target (systemd.unit=): the journal, D-Bus (podman's systemd cgroup
# manager talks to systemd through it) and the test unit, without sysinit.target's udev, tmpfiles,
# sysusers, remount and module loading, which took 6-10 s under TCG and which nothing here needs.
TARGET = """[Unit]
Description=vmm-cgroup-hooks node tests
Requires=vmmcg-node-test.service
AllowIsolate=yes
"""

UNIT = """[Unit]
Description=vmm-cgroup-hooks node tests
DefaultDependencies=no
Requires=dbus.socket systemd-journald.socket
After=dbus.socket systemd-journald.socket

[Service]
Type=exec
ExecStart=/bin/bash /usr/local/lib/vmmcg-node/guest.sh
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS0
TTYReset=no
TTYVHangup=no
"""


def build_initramfs(path, kernel_dir, destdir, params, build):
    cpio = v2.Cpio()
    for d in ("dev", "proc", "sys", "newroot", "etc", "lib/modules"):
        cpio.directory(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)
    busybox = shutil.which("busybox") or "/bin/busybox"
    cpio.file("bin/busybox", v2.read_binary(busybox, False))
    for applet in run([busybox, "--list"]).split():
        if applet != "busybox":
            cpio.symlink(f"bin/{applet}", "busybox")
    with open(os.path.join(HERE, "init.sh"), "rb") as f:
        cpio.file("init", f.read())
    cpio.file("etc/vmmcg-node-modules", "\n".join(MODULES).encode() + b"\n", 0o644)
    for module in MODULES:
        with open(os.path.join(kernel_dir, "modules", module + ".ko"), "rb") as f:
            cpio.file(f"lib/modules/{module}.ko", f.read(), 0o644)

    # The payload, copied over the guest's root by /init.
    for top, _dirs, files in os.walk(destdir):
        for name in files:
            host = os.path.join(top, name)
            rel = os.path.relpath(host, destdir)
            if os.path.islink(host):
                cpio.symlink(f"payload/{rel}", os.readlink(host))
            else:
                with open(host, "rb") as f:
                    cpio.file(f"payload/{rel}", f.read(), os.stat(host).st_mode & 0o7777)
    # Beside the stand-in's name, what a node without KVM vCPUs and with podman needs: vcpu_proof "names"
    # (the TCG guest has no /dev/kvm, test-vmm runs with --no-kvm and holds no KVM vCPU fds), and opt_in
    # "annotation" (podman registers the hooks through oci-hooks.d and enables them by the container's
    # annotation; podman's root user owns the node).
    config = {"vmm_names": ["test-vmm"], "vcpu_proof": "names", "opt_in": "annotation"}
    cpio.file("payload" + CONFIG_PATH, (json.dumps(config) + "\n").encode(), 0o644)
    lib = "payload/usr/local/lib/vmmcg-node"
    with open(os.path.join(HERE, "guest.sh"), "rb") as f:
        cpio.file(f"{lib}/guest.sh", f.read())
    cpio.file(f"{lib}/params", params.encode(), 0o644)
    cpio.file(f"{lib}/vmm-image.tar", vmm_image_tar(build), 0o644)
    cpio.file("payload/etc/systemd/system/vmmcg-node-test.service", UNIT.encode(), 0o644)
    cpio.file("payload/etc/systemd/system/vmmcg-node.target", TARGET.encode(), 0o644)
    # D-Bus without sysinit.target (its default dependencies), so that the target above does not pull it in.
    for unit in ("dbus.socket", "dbus.service"):
        cpio.file(f"payload/etc/systemd/system/{unit}.d/vmmcg-node.conf", b"[Unit]\nDefaultDependencies=no\n", 0o644)
    cpio.file("payload/etc/machine-id", b"5f6e6f64655f766d6d63675f74657374\n", 0o444)
    for g in ("systemd-cryptsetup-generator", "systemd-integritysetup-generator", "systemd-debug-generator",
              "systemd-rc-local-generator", "systemd-fstab-generator", "systemd-run-generator",
              "systemd-getty-generator", "systemd-system-update-generator", "systemd-gpt-auto-generator",
              "systemd-sysv-generator", "systemd-hibernate-resume-generator", "systemd-veritysetup-generator"):
        cpio.symlink(f"payload/etc/systemd/system-generators/{g}", "/dev/null")
    data = gzip.compress(cpio.finish(), compresslevel=1, mtime=0)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


# ---------------------------------------------------------------------------------------------------------
# The guest


def boot(kernel, initrd, image, cmdline, timeout, verbose, console_log):
    """Boots the guest; returns (console lines, finished, seconds, seconds to the test unit)."""
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        raise Failure("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
    # TCG: a guest kernel booted under KVM hangs on the development machine. -snapshot: the cached image is
    # never written. No NIC: the containers run with --network none.
    args = [qemu, "-accel", "tcg", "-machine", "q35", "-cpu", os.environ.get("VMMCG_NODE_CPU", "Nehalem"), "-m", "2048", "-smp", "2",
            "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
            "-drive", f"file={image},format=raw,if=virtio,cache=unsafe", "-snapshot",
            "-nic", "none", "-nographic", "-no-reboot"]
    lines, done, booted = [], threading.Event(), []
    start = time.monotonic()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def reader():
        with open(console_log, "w") as out:
            for raw in proc.stdout:
                line = v2.ESCAPES.sub("", raw.decode("utf-8", "replace").rstrip("\r\n").replace("\r", ""))
                lines.append(line)
                out.write(line + "\n")
                if verbose:
                    print(f"guest| {line}", flush=True)
                if BOOTED.search(line) and not booted:
                    booted.append(time.monotonic() - start)
                if line.strip() == "VMMCG-DONE":
                    done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        deadline = start + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if done.is_set():
                try:
                    proc.wait(timeout=10)  # the guest powers off after DONE
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
    return lines, done.is_set(), time.monotonic() - start, booted[0] if booted else None


def select_cases(text):
    if not text:
        return list(CASES)
    chosen = []
    for word in re.split(r"[\s,]+", text.strip()):
        matched = [c for c in CASES if c == word or c.startswith(word + "-") or c.endswith("-" + word)]
        if not matched:
            raise Failure(f"unknown case {word!r}; cases: {' '.join(CASES)} (or a runtime, or a case name "
                          f"without its runtime)")
        chosen += [c for c in matched if c not in chosen]
    return [c for c in CASES if c in chosen]


def check_ctl_json(text):
    """(PASS|FAIL, detail) for `vmm-cgroupctl status --json ID` of a placed container."""
    import jsonschema  # python3-jsonschema (scripts/setup)
    with open(SCHEMA) as f:
        schema = json.load(f)
    try:
        document = json.loads(text)
        jsonschema.validate(document, schema)
    except (ValueError, jsonschema.ValidationError) as e:
        return "FAIL", f"not valid against {os.path.relpath(SCHEMA, SOURCE_ROOT)}: {str(e)[:600]}"
    containers = document["containers"]
    if len(containers) != 1 or not containers[0]["placement_ok"]:
        return "FAIL", (f"{len(containers)} containers, placement_ok "
                        f"{[c['placement_ok'] for c in containers]}, problems {[c['problems'] for c in containers]}")
    c = containers[0]
    return "PASS", (f"valid against the schema; {c['id'][:12]}: placement_ok, mode {c['mode']}, "
                    f"host {c['host']}, {len(c['threads'])} threads")


def check_ctl_prometheus(text):
    """(PASS|FAIL, detail) for `vmm-cgroupctl status --prometheus ID` of a placed container."""
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if checked.returncode != 0:
        return "FAIL", f"promtool check metrics exited {checked.returncode}: {checked.stdout.strip()[:600]}"
    ok = re.findall(r"^vmm_cgroup_placement_ok\{[^}]*\} (\S+)$", text, re.M)
    if ok != ["1"]:
        return "FAIL", f"promtool is content, but vmm_cgroup_placement_ok is {ok} (expected one sample, 1)"
    return "PASS", f"promtool check metrics: clean; {len(text.splitlines())} lines, vmm_cgroup_placement_ok 1"


def check_data(lines):
    """The checks made here of what the guest sent as VMMCG-DATA, as VMMCG-RESULT lines."""
    chunks = {}
    for line in lines:
        if m := DATA.search(line):
            chunks.setdefault((m.group(1), m.group(2)), []).append(m.group(3))
    checks = {"json": ("ctl-json", check_ctl_json), "prometheus": ("ctl-prometheus", check_ctl_prometheus)}
    results = []
    for (case, name), parts in chunks.items():
        if name not in checks:
            continue
        check, judge_data = checks[name]
        try:
            text = base64.b64decode("".join(parts), validate=True).decode()
        except (ValueError, UnicodeDecodeError) as e:
            status, detail = "FAIL", f"what the guest sent does not decode: {e}"
        else:
            status, detail = judge_data(text)
        results.append(f"VMMCG-RESULT {status} {case}/{check}: {detail}")
    return results


def judge(lines, cases, finished):
    """Prints every result; returns the number of failures (results that failed and results missing)."""
    results = {}
    for line in lines:
        if m := RESULT.search(line):
            results.setdefault(m.group(2), []).append((m.group(1), m.group(3), m.group(4) or ""))
    ended = {m.group(1): int(m.group(2)) for line in lines if (m := CASE_END.search(line))}
    failures, passed = [], 0
    expected = {"boot": BOOT_CHECKS, "end": END_CHECKS, **CASES}
    for case in ["boot", *cases, "end"]:
        got = results.get(case, [])
        for status, check, detail in got:
            print(f"{status} {case}/{check}" + (f": {detail}" if detail else ""))
            if status == "PASS":
                passed += 1
            else:
                failures.append(f"{case}/{check}")
        names = {check for _, check, _ in got}
        for check in expected[case]:
            if check not in names:
                print(f"FAIL {case}/{check}: missing (the guest never reported it)")
                failures.append(f"{case}/{check} (missing)")
        if case not in ("boot", "end") and case not in ended:
            print(f"FAIL {case}: never finished (no VMMCG-CASE-END)")
            failures.append(f"{case} (unfinished)")
    unknown = sorted(set(results) - {"boot", "end", *cases})
    for case in unknown:
        for status, check, detail in results[case]:
            print(f"FAIL {case}/{check}: a result of a case that was not asked for ({status}: {detail})")
            failures.append(f"{case}/{check} (unexpected)")
    if not finished:
        print("FAIL guest: VMMCG-DONE never came")
        failures.append("guest (unfinished)")
    return passed, failures, ended


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", required=True, help="meson build directory (hooks/, tests/test-vmm)")
    parser.add_argument("--cache-dir", help=f"kernel, image and package cache (default: ${CACHE_ENV} or "
                                            f"{DEFAULT_CACHE})")
    parser.add_argument("--cases", help="cases to run, space or comma separated: a case (crun-run), a runtime "
                                        "(runc) or a case name for both runtimes (pause); default: all. "
                                        "--list shows them")
    parser.add_argument("--jobs", type=int, default=2, choices=(1, 2, 3),
                        help="cases run at a time in the guest (default 2; the reload and journal cases always "
                             "run alone)")
    parser.add_argument("--list", action="store_true", help="list the cases and their checks, and exit")
    # 1400: the whole run took over 600 s at load average 11; meson's budget for the suite is 1500 s
    parser.add_argument("--timeout", type=float, default=1400, help="hard limit for the guest, seconds")
    parser.add_argument("--rebuild-image", action="store_true", help="build the image even when cached")
    parser.add_argument("--bzimage", action="store_true", help="boot the bzImage, not the extracted vmlinux")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (initrd, console log)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="echo the guest's whole console: kernel, systemd, every podman command and its "
                             "output")
    options = parser.parse_args()
    if options.list:
        for case, checks in CASES.items():
            print(f"{case}: {' '.join(checks)}")
        return 0

    started = time.monotonic()
    build = os.path.abspath(options.build_dir)
    cache = os.path.abspath(options.cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    work = tempfile.mkdtemp(prefix=PREFIX, dir="/tmp")
    try:
        cases = select_cases(options.cases)
        test_vmm = os.path.join(build, "tests", "test-vmm")
        if not os.access(test_vmm, os.X_OK):
            raise Failure(f"{test_vmm} not built (meson setup {build} && ninja -C {build})")
        os.makedirs(cache, exist_ok=True)

        def kernel_and_image():
            kernel_dir = get_kernel(cache)
            v2.check_kernel_config(os.path.join(kernel_dir, "config"))
            kernel = None if options.bzimage else extract_vmlinux(kernel_dir)
            if kernel is None:
                kernel = os.path.join(kernel_dir, "vmlinuz")
                log("kernel: booting the bzImage" + ("" if options.bzimage else " (no PVH vmlinux could be cut out)"))
            return kernel_dir, kernel, get_image(cache, options.rebuild_image)

        # The kernel's apt-cache lookup (and a cold cache's downloads and image build) while meson installs.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            fetching = pool.submit(kernel_and_image)
            destdir, _installed = install_hooks(build, work)
            kernel_dir, kernel, (image, _manifest) = fetching.result()
        # The man pages the build made (scdoc found), which the guest must have where meson installs them
        man_pages = [p for p in MAN_PAGES if os.path.exists(os.path.join(build, "docs", p))]
        params = (f"CASES='{' '.join(cases)}'\nVERBOSE={1 if options.verbose else 0}\nJOBS={options.jobs}\n"
                  f"MAN_PAGES='{' '.join(man_pages)}'\n")
        initrd = os.path.join(work, "initrd.gz")
        size = build_initramfs(initrd, kernel_dir, destdir, params, build)
        prepared = time.monotonic()
        log(f"initramfs {size // 1024} KiB; prepared in {prepared - started:.1f} s; booting "
            f"{os.path.basename(kernel)}, {len(cases)} cases")

        cmdline = ("console=ttyS0 panic=-1 systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all "
                   "systemd.unit=vmmcg-node.target mitigations=off "
                   "systemd.show_status=" + ("1" if options.verbose else "0 quiet loglevel=1"))
        console = os.path.join(work, "console.log")
        lines, finished, seconds, booted = boot(kernel, initrd, image, cmdline, options.timeout,
                                                options.verbose, console)
        for line in lines:
            if m := INFO.search(line):
                print(f"{m.group(1)} {m.group(2)}")
        passed, failures, ended = judge(lines + check_data(lines), cases, finished)
        booted_text = f"{booted:.1f} s to the test unit, " if booted else ""
        print(f"{passed} passed, {len(failures)} failed; guest {seconds:.1f} s ({booted_text}"
              f"cases: {', '.join(f'{c} {s} s' for c, s in ended.items())}); "
              f"{time.monotonic() - started:.1f} s in all")
        if failures:
            print("failed: " + " ".join(failures))
            if not finished or not ended:
                print("--- console (last 80 lines) ---")
                print("\n".join(lines[-80:]))
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
