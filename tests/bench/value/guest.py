"""The value benchmark's guest: Debian 12's 6.1 kernel, its virtio modules and a busybox initramfs.

The kernel and its cache are the v2 guest suite's (tests/v2guest/run_v2_guest.py: get_kernel, and its
cpio writer); this module adds what that guest does not need: the virtio-blk modules (Debian builds
virtio as modules), taken from the same package and cached next to the kernel, and an /init that
saturates the vCPUs and runs the I/O probe (init.sh, guest_io.c).
"""
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import gzip
import lzma

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "v2guest"))
import run_v2_guest as v2guest  # noqa: E402  (the kernel download and cache, the cpio writer)

# The modules virtio-blk on a PCI machine needs, loaded in dependency order (from their .modinfo).
WANTED_MODULES = ("virtio_blk", "virtio_pci")
MODULE_DIRS = ("kernel/drivers/virtio/", "kernel/drivers/block/virtio_blk.ko")


class GuestError(Exception):
    pass


def get_kernel(cache_dir):
    try:
        return v2guest.get_kernel(cache_dir)
    except v2guest.Failure as e:
        raise GuestError(str(e)) from None


def module_depends(path):
    with open(path, "rb") as f:
        data = f.read()
    match = re.search(rb"\0depends=([^\0]*)\0", data)
    return [d for d in match.group(1).decode().split(",") if d] if match else []


def load_order(directory):
    """The wanted modules and what they depend on, dependencies first; fails if one is missing."""
    order, seen = [], set()

    def visit(name, chain):
        if name in seen:
            return
        path = os.path.join(directory, name + ".ko")
        if not os.path.isfile(path):
            raise GuestError(f"module {name} (needed by {' <- '.join(chain) or 'the guest'}) is not in the "
                             "kernel package")
        for dep in module_depends(path):
            visit(dep, [name, *chain])
        seen.add(name)
        order.append(name)

    for name in WANTED_MODULES:
        visit(name, [])
    return order


def get_modules(cache_dir, vmlinuz):
    """(directory of .ko files, load order) for the kernel get_kernel returned, cached next to it."""
    key = os.path.basename(os.path.dirname(vmlinuz))  # <package>_<version>, as the v2 suite caches it
    target = os.path.join(cache_dir, "modules", key)
    if os.path.isfile(os.path.join(target, "order")):
        with open(os.path.join(target, "order")) as f:
            return target, f.read().split()
    name, _, version = key.partition("_")
    release = name[len("linux-image-"):]
    print(f"run_value: kernel modules: downloading {name} {version} again for its virtio modules", flush=True)
    os.makedirs(cache_dir, exist_ok=True)
    download = tempfile.mkdtemp(prefix="vmmcg-value-download-", dir=cache_dir)
    try:
        result = subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=download,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        debs = [f for f in os.listdir(download) if f.endswith(".deb")]
        if result.returncode != 0 or len(debs) != 1:
            raise GuestError(f"apt-get download {name}={version} failed (apt-get update first?):\n{result.stdout}")
        unpack = os.path.join(download, "modules")
        os.mkdir(unpack)
        prefix = f"./lib/modules/{release}/"
        with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", os.path.join(download, debs[0])],
                              stdout=subprocess.PIPE) as deb:
            with tarfile.open(fileobj=deb.stdout, mode="r|") as tar:
                for member in tar:
                    inner = member.name[len(prefix):] if member.name.startswith(prefix) else ""
                    if member.isfile() and inner.endswith(".ko") and inner.startswith(MODULE_DIRS):
                        with tar.extractfile(member) as src, \
                                open(os.path.join(unpack, os.path.basename(inner)), "wb") as dst:
                            shutil.copyfileobj(src, dst)
            deb.stdout.close()
        if deb.returncode != 0:
            raise GuestError(f"dpkg-deb --fsys-tarfile {debs[0]} failed")
        order = load_order(unpack)
        with open(os.path.join(unpack, "order"), "w") as f:
            f.write("\n".join(order) + "\n")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.rename(unpack, target)
        except OSError:
            if not os.path.isfile(os.path.join(target, "order")):
                raise
    finally:
        shutil.rmtree(download, ignore_errors=True)
    return target, order


def get_vmlinux(cache_dir, vmlinuz, config):
    """The kernel's ELF image, taken out of its bzImage once and cached next to the modules, when the kernel
    has a PVH entry (CONFIG_PVH): QEMU then starts it directly, where a bzImage is first decompressed by the
    guest (XZ, under TCG: 10-25 s a boot on a loaded machine, against 1-3 s). The bzImage otherwise."""
    with open(config) as f:
        if "CONFIG_PVH=y\n" not in f.read():
            return vmlinuz
    target = os.path.join(cache_dir, "modules", os.path.basename(os.path.dirname(vmlinuz)), "vmlinux")
    if os.path.isfile(target):
        return target
    with open(vmlinuz, "rb") as f:
        image = f.read()
    start = image.find(b"\xfd7zXZ\x00")
    if start < 0:
        return vmlinuz  # not XZ: left to the guest's decompressor
    elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(image[start:])
    if not elf.startswith(b"\x7fELF"):
        return vmlinuz
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(target), delete=False) as out:
        out.write(elf)
    os.rename(out.name, target)
    return target


def build_initramfs(path, guest_io, modules_dir, order):
    cpio = v2guest.Cpio()
    for d in ("dev", "proc", "sys", "tmp", "modules"):
        cpio.directory(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)
    busybox = shutil.which("busybox") or "/bin/busybox"
    if v2guest.libraries(busybox):
        raise GuestError(f"{busybox} is dynamically linked: apt-get install busybox-static")
    cpio.file("bin/busybox", v2guest.read_binary(busybox, False))
    for applet in subprocess.run([busybox, "--list"], check=True, stdout=subprocess.PIPE, text=True).stdout.split():
        if applet != "busybox":
            cpio.symlink(f"bin/{applet}", "/bin/busybox")
    if v2guest.libraries(guest_io):
        raise GuestError(f"{guest_io} is not static")
    cpio.file("bin/guest-io", v2guest.read_binary(guest_io, True))
    with open(os.path.join(HERE, "init.sh"), "rb") as f:
        cpio.file("init", f.read())
    for name in order:
        with open(os.path.join(modules_dir, name + ".ko"), "rb") as f:
            cpio.file(f"modules/{name}.ko", f.read(), 0o644)
    cpio.file("modules/order", (" ".join(order) + "\n").encode(), 0o644)
    with open(path, "wb") as f:
        f.write(gzip.compress(cpio.finish(), compresslevel=6, mtime=0))
