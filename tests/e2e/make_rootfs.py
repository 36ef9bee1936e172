#!/usr/bin/env python3
"""Builds a container root file system from host files, for the end-to-end tests (no registry needed).

    make_rootfs.py DEST [EXTRA_BINARY ...]

DEST gets busybox-static (every applet as a symlink, /bin/sh), qemu-system-x86_64 with every library ldd
lists and the dynamic loader, QEMU's data directories (/usr/share/qemu, /usr/share/seabios,
/usr/lib/ipxe/qemu: what `-machine pc|q35 -nodefaults` reads, kvmvapic.bin and bios-256k.bin among them),
its accelerator modules (/usr/lib/<triplet>/qemu/accel-*.so: TCG is a module on Debian),
and each EXTRA_BINARY in /usr/local/bin (with its libraries when it is dynamic).

Files are copied, never hard-linked: the container runs as root and must not be able to write the host's
files. The tree is rebuilt only when its inputs changed: DEST/.vmmcg-e2e-manifest records the path, size and
mtime of every source file, and a second call with the same inputs returns at once.
"""

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

MANIFEST = ".vmmcg-e2e-manifest"
QEMU = "qemu-system-x86_64"
# QEMU's data directories on Debian 12, as `qemu-system-x86_64 -L help` lists them (relative to the binary).
QEMU_DATA_DIRS = ("/usr/share/qemu", "/usr/share/seabios", "/usr/lib/ipxe/qemu")
BASE_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "lib", "lib64", "etc", "dev", "proc",
             "sys", "tmp", "run", "var/tmp", "root")


def which(name):
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"make_rootfs: {name} is not installed")
    return os.path.realpath(path)


def is_dynamic(path):
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"\x7fELF":
        return False
    out = subprocess.run(["ldd", path], capture_output=True, text=True)
    return out.returncode == 0 and "not a dynamic executable" not in out.stdout + out.stderr


def libraries(binary):
    """Every file ldd names for binary (libraries and the loader), as (path as linked, real file)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].strip().split(" (")[0].strip()
            if not target or target == "not found":
                if "not found" in line:
                    raise RuntimeError(f"make_rootfs: {binary}: {line}")
                continue
        else:
            target = line.split(" (")[0].strip()
            if not target.startswith("/"):
                continue  # linux-vdso.so.1
        libs.append(target)
    return libs


def data_files():
    """(source, destination inside the rootfs) for QEMU's data directories, symlinks resolved."""
    pairs = []
    for top in QEMU_DATA_DIRS:
        if not os.path.isdir(top):
            continue
        for dirpath, _dirs, files in os.walk(top, followlinks=True):
            for name in files:
                src = os.path.join(dirpath, name)
                if os.path.exists(src):  # skips dangling links
                    pairs.append((src, src))
    return pairs


def plan(extras):
    """The list of (source file, path inside the rootfs, kind) the rootfs is made of."""
    items = [(which("busybox"), "/bin/busybox", "file")]
    qemu = which(QEMU)
    items.append((qemu, "/usr/bin/" + QEMU, "file"))
    seen = set()
    # QEMU's loadable modules: Debian builds TCG as one (accel-tcg-x86_64.so, "could not load module for type
    # 'tcg-accel-ops'" without it); the display/audio/usb ones are not needed with -nographic -nodefaults.
    modules = sorted(glob.glob("/usr/lib/*/qemu/accel-*.so"))
    for module in modules:
        items.append((os.path.realpath(module), module, "file"))
    binaries = [qemu] + modules + [os.path.realpath(e) for e in extras]
    for extra in extras:
        real = os.path.realpath(extra)
        if not os.path.isfile(real):
            raise RuntimeError(f"make_rootfs: {extra} is not a file")
        items.append((real, "/usr/local/bin/" + os.path.basename(extra), "file"))
    for binary in binaries:
        if not is_dynamic(binary):
            continue
        for lib in libraries(binary):
            if lib in seen:
                continue
            seen.add(lib)
            # The path as the loader looks it up (and, for /lib64/ld-linux..., the interpreter path).
            items.append((os.path.realpath(lib), lib, "file"))
    for src, dst in data_files():
        items.append((os.path.realpath(src), dst, "file"))
    return items


def signature(items):
    h = hashlib.sha256()
    for src, dst, kind in items:
        st = os.stat(src)
        h.update(f"{src}\0{dst}\0{kind}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    h.update(b"layout-3")  # bump when the layout below changes
    return h.hexdigest()


def applets(busybox):
    out = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
    return [a for a in out.split() if re.fullmatch(r"[A-Za-z0-9_.\[\]-]+", a)]


def build(dest, extras=()):
    """Builds (or reuses) the rootfs at dest; returns dest."""
    dest = os.path.abspath(dest)
    items = plan(list(extras))
    sig = signature(items)
    manifest = os.path.join(dest, MANIFEST)
    try:
        with open(manifest) as f:
            if json.load(f).get("signature") == sig:
                return dest
    except (OSError, ValueError):
        pass
    # Build next to dest, then swap, so that a half-built tree is never used.
    tmp = dest + ".tmp-build"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for d in BASE_DIRS:
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    os.chmod(os.path.join(tmp, "tmp"), 0o1777)
    for src, dst, _kind in items:
        target = os.path.join(tmp, dst.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.lexists(target):
            os.unlink(target)
        shutil.copy2(src, target)
    for applet in applets(os.path.join(tmp, "bin/busybox")):
        link = os.path.join(tmp, "bin", applet)
        if applet != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(tmp, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(tmp, "etc/group"), "w") as f:
        f.write("root:x:0:\n")
    with open(os.path.join(tmp, MANIFEST), "w") as f:
        json.dump({"signature": sig, "files": [[s, d] for s, d, _ in items]}, f, indent=1)
    if os.path.exists(dest):
        old = dest + ".tmp-old"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, dest)
    return dest


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    dest = build(argv[1], argv[2:])
    print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
