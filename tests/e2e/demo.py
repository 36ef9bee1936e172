#!/usr/bin/env python3
"""The main job, shown: one QEMU VM container started through podman with the hooks registered, where every
thread of the VMM is in every cgroup hierarchy, then podman stop/rm and the host clean again.

    python3 tests/e2e/demo.py [--build-dir BUILD | --prefix PREFIX] [--runtime runc|crun]
                              [--mode split|sandbox-only] [--accel auto|kvm|tcg] [--verbose]

As root, with podman, runc/crun, qemu-system-x86_64 and busybox-static installed (scripts/setup). The hooks
come from `meson install --destdir <temp dir>` of BUILD (default ./build), or from an install PREFIX. The
podman it runs is private (its own storage and configuration under /tmp/vmmcg-e2e-*); the container's
cgroups and the overhead root are named vmmcg-e2e-*. Everything is removed at the end, also on failure.
Without /dev/kvm the VM runs with TCG, and the demo says so. Exit status 0 when the placement was as expected
and nothing was left behind.
"""

import argparse
import json
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_lib as L  # noqa: E402


def say(text=""):
    print(text, flush=True)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", default=os.path.join(L.SOURCE_ROOT, "build"))
    parser.add_argument("--prefix", help="install prefix of the hooks instead of --build-dir")
    parser.add_argument("--runtime", choices=("runc", "crun"), default="runc")
    parser.add_argument("--mode", choices=("split", "sandbox-only"), default="split")
    parser.add_argument("--crun-hide", choices=sorted(L.CRUN_HIDE), default="tmpfs",
                        help="hybrid hosts: how the crun wrapper hides the cgroup2 mount")
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                        help="QEMU accelerator (auto: kvm when /dev/kvm is usable, else tcg)")
    parser.add_argument("--verbose", action="store_true", help="one tree per hierarchy, the whole record")
    args = parser.parse_args(argv[1:])
    # SIGTERM (meson test's timeout, kill) unwinds like an exception, so that the cleanup still runs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        say("demo: run as root (podman, cgroupfs)")
        return 1

    ok = True
    session = sc = None
    try:
        session = L.Session(prefix=args.prefix, build_dir=None if args.prefix else args.build_dir,
                            tag="-demo", crun_hide=args.crun_hide, accel=args.accel)
        host = session.host
        say(f"host: cgroup {host.mode}" + (" (v1 controllers, cgroup2 mount tracks processes only)"
                                           if host.mode == "hybrid" else ""))
        if not session.kvm:
            why = "--accel tcg" if args.accel == "tcg" else "/dev/kvm is not usable here"
            say(f"NOTE: {why}: the VM runs with TCG (-accel tcg), vCPU threads 'CPU n/TCG'")
        say(f"hooks: {session.prefix}/libexec/vmm-cgroup-hooks/ "
            f"({'installed from ' + args.build_dir if session.installed_by_us else 'installed'})")
        sc = L.Scenario(session, "demo", runtime=args.runtime, mode=args.mode)
        with open(sc.config) as f:
            say(f"configuration ({sc.config}): {f.read().strip()}".replace("\n", " "))
        with open(os.path.join(sc.hooks_dir, f"{L.PREFIX}createruntime.json")) as f:
            hook = json.load(f)
        say(f"registered in {sc.hooks_dir}: one file per stage, e.g. createRuntime -> {' '.join(hook['hook']['args'])}")
        runtime = args.runtime + (f" (through a wrapper: private mount namespace, cgroup2 mount hidden by "
                                  f"{args.crun_hide})" if sc.podman.wrapped else "")
        say(f"runtime: {runtime}")
        say()
        say("podman run -d --annotation io.vmm-cgroup-hooks.enable=true" + (" --device /dev/kvm" if session.kvm else "")
            + f" ... --rootfs <busybox+qemu rootfs> {' '.join(sc.command())}")
        t0 = time.monotonic()
        sc.start()
        say(f"container {sc.cid[:12]}: process {sc.init_pid} (the VMM itself), "
            f"{sum(1 for _, n in L.threads(sc.vmm_pid) if L.is_vcpu(n))} vCPU threads")
        say(f"  S, the container's cgroup (podman: State.CgroupPath): {sc.layout.s}")
        if sc.layout.o:
            say(f"  O, the overhead cgroup, beside S (instance {sc.instance}: the id and a hash of the bundle "
                f"path): {sc.layout.o}")
        bad = sc.wait_placed(30)
        L.wait_until(lambda: not sc.hook_pids(), 20)
        say(f"placement settled in {time.monotonic() - t0:.1f}s after podman run")
        say()

        def label(key, path):
            if path == sc.layout.s:
                return "S"
            if sc.layout.o and path == sc.layout.o:
                return "O"
            if key == "" and path == sc.layout.unified_s:
                return "the runtime's cgroup2 placement (left alone)"
            return None

        say("where every thread of the VMM is, per hierarchy (hierarchies with the same placement together):")
        for line in L.placement_tree(host, [sc.vmm_pid], sc.layout.keys(), label, group=not args.verbose):
            say("  " + line)
        say()
        if os.path.exists(sc.record_path()):
            if args.verbose:
                say(f"record {sc.record_path()}:")
                say("  " + sc.record_text().strip().replace("\n", "\n  "))
            else:
                try:
                    rec = json.loads(sc.record_text())
                    text = f"record {sc.record_path()}: mode {rec.get('mode')}, host {rec.get('host')}"
                    if (rec.get("vmm") or {}).get("pid"):
                        text += (f", VMM pid {rec['vmm']['pid']}, vCPU threads {rec.get('vcpus')} (from "
                                 f"{rec.get('vcpu_source')})")
                    hierarchies = (rec.get("v1") or {}).get("hierarchies") or []
                    if hierarchies:
                        text += ", O in " + ", ".join("/".join(h.get("controllers", [])) for h in hierarchies)
                    text += f", phase {rec.get('phase')}, instance {rec.get('name')}"
                    say(text + " (--verbose: all of it)")
                except (ValueError, AttributeError):
                    say(f"record {sc.record_path()}: {sc.record_text()}")
            say()
        bad = bad or sc.placement_problems()
        bad += sc.overhead_problems()
        if sc.layout.o:
            bad += sc.record_problems()
        if bad:
            ok = False
            say(f"NOT as expected ({len(bad)}):")
            for b in bad[:20]:
                say(f"  {b}")
        elif sc.layout.mode == "split":
            say("as expected: in cpu and cpuset the vCPU threads are in S and every other thread in O; in "
                "every other hierarchy (cpuacct too: the container's accounting stays whole) the whole VMM is in S")
        else:
            say("as expected: every thread in S in every hierarchy; nothing created")
        say()
        say("podman stop && podman rm")
        sc.stop()
        left = sc.wait_clean(5)
        if left:
            ok = False
            say("left behind: " + "; ".join(left))
        else:
            say(("clean: " + (f"{sc.layout.o} gone from every hierarchy, " if sc.layout.o else ""))
                + "no record, no hook process, the VMM gone")
    except L.Failure as e:
        ok = False
        say(f"demo failed: {e}")
        if sc and sc.instance:
            say("record: " + sc.record_text())
    finally:
        problems = []
        if sc:
            problems += sc.close()
        if session:
            problems += session.close()
            left = L.prefixed_cgroups(session.host, session.cg_prefix)
            say(f"host after cleanup: {len(left)} cgroups named {session.cg_prefix}*, "
                f"{'no' if not os.path.exists(session.dir) else 'a'} temp dir {session.dir}")
            if left:
                problems += left
        if problems:
            ok = False
            say("cleanup problems: " + "; ".join(problems))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
