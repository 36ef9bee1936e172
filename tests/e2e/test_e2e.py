#!/usr/bin/env python3
"""End-to-end suite: the hooks registered with a real podman, real runc and crun, real QEMU/KVM.

    python3 tests/e2e/test_e2e.py [--prefix PREFIX | --build-dir BUILD] [--cases REGEX] [--rootfs-cache DIR]
                                  [--via-wrapper]

As root on a cgroup v1 or hybrid host (cgroup v2 expectations are written but have not been run). Needs
podman, runc, crun, conmon, qemu-system-x86_64, busybox-static, python3 (stdlib only).

The hooks: --prefix is a `meson install` prefix holding libexec/vmm-cgroup-hooks/vmm-cgroup-{create-runtime,
poststart,poststop} and share/containers/oci/hooks.d/*.json. Without --prefix the driver runs
`meson install --destdir <temp dir>` from --build-dir (default: ./build of the source tree; it must be built).
The installed hooks.d files are checked (case installed-hook-files), then each case writes its own hooks.d
files with the same form, pointing at the installed executables with `--config <its configuration>`
(its mode and a record_dir of its own, otherwise the hooks' defaults; "opt_in": "annotation", since podman
enables the hooks by the container's annotation). With --via-wrapper podman's --runtime is the installed
runtime wrapper instead (vmm-cgroup-runtime, its runtime.json naming runc or crun, the hooks and the case's
configuration, without opt_in): no hooks.d files, no annotation; the wrapper adds the hooks with
--gate=runtime.

Each case prints `PASS <name>` or `FAIL <name>: <reason>` (details on stderr); the exit status is 1 when any
case failed. Everything is created under /tmp/vmmcg-e2e-* and as cgroups and containers named vmmcg-e2e-*,
and removed at the end, also on failure: the containers (podman rm -f), podman's private store (after
unmounting anything left below it), the cgroups (deepest first; only processes inside them, which the suite
started, are killed).

Without /dev/kvm the VMs run with TCG (`-accel tcg`, vCPU threads named CPU n/TCG); the driver says so.
"""

import argparse
import os
import signal
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_lib as L  # noqa: E402

SETTLE_TIMEOUT = 30  # s: the placement must be right and stable by then (the settler polls with backoff)
SETTLER_EXIT_TIMEOUT = 20  # s: the settler exits once the placement is stable
CLEAN_TIMEOUT = 5  # s: after podman stop/rm, what the hooks created is gone (poststop runs in podman stop)


def details(lines):
    for line in lines:
        L.log(f"    {line}")


STOP_WORDS = {"stop": "podman stop/rm", "rm-f": "podman rm -f", "exit": "the VMM's exit and podman rm"}


def vm_case(session, name, stop="stop", expect_log=None, **kwargs):
    """Starts a VM container, checks every thread of the VMM in every hierarchy while it runs, ends it
    (stop: see Scenario.stop), checks that nothing the hooks created remains. expect_log: a line the hooks
    must have logged (the case keeps their stderr)."""
    if expect_log:
        kwargs["hook_log"] = True
    sc = L.Scenario(session, name, **kwargs)
    problems = []
    try:
        sc.start()
        what = sc.layout.mode + (" (through the runtime wrapper)" if sc.via_wrapper else
                                 " (not annotated)" if not sc.annotate else
                                 f" (annotated, opt_in {sc.opt_in})")
        L.log(f"  {name}: container {sc.cid[:12]} process {sc.init_pid}, VMM {sc.vmm_pid}, "
              f"S={sc.layout.s}, O={sc.layout.o}, {what}")
        bad = sc.wait_placed(SETTLE_TIMEOUT)
        if bad:
            details(L.placement_tree(session.host, [sc.vmm_pid], sc.layout.keys()))
            details(["record: " + sc.record_text()])
            raise L.Failure(f"{len(bad)} misplaced thread/hierarchy pairs after {SETTLE_TIMEOUT}s, first: {bad[0]}"
                            + (f"; {bad[1]}" if len(bad) > 1 else ""))
        bad = sc.overhead_problems()
        if bad:
            raise L.Failure("overhead cgroup: " + "; ".join(bad))
        if sc.layout.o:
            if not os.path.exists(sc.record_path()):
                found = os.listdir(sc.record_dir) if os.path.isdir(sc.record_dir) else []
                raise L.Failure(f"no record {sc.record_path()} while the container runs (the record dir "
                                f"holds {found})")
            bad = sc.record_problems()
            if bad:
                details(["record: " + sc.record_text()])
                raise L.Failure(f"record {sc.record_path()}: " + "; ".join(bad))
        if not sc.enabled and os.path.isdir(sc.record_dir) and os.listdir(sc.record_dir):
            raise L.Failure(f"the hooks acted for a container they are not enabled for: {os.listdir(sc.record_dir)}")
        if expect_log:
            # the hooks did run (podman matched the annotation), and said why they did nothing
            with open(sc.hook_log, errors="replace") as f:
                text = f.read()
            if expect_log not in text:
                details(["hooks.log:"] + text.splitlines()[-20:])
                raise L.Failure(f"hooks.log lacks {expect_log!r}: did the hooks run?")
        # Once the placement is stable, one process of the hooks stays where a VMM was placed: its watcher,
        # named in the record (the settler that became it, under runc); nothing else keeps running.
        def only_the_watcher():
            want = [sc.record_watcher()] if sc.layout.o and sc.record_watcher() else []
            return sorted(sc.hook_pids()) == want
        if not L.wait_until(only_the_watcher, SETTLER_EXIT_TIMEOUT):
            raise L.Failure(f"{SETTLER_EXIT_TIMEOUT}s after placement, the hook processes running are not just "
                            f"the record's watcher ({sc.record_watcher()}): "
                            + ("; ".join(f"{p}: {L.cmdline(p)}" for p in sc.hook_pids()) or "none"))
        bad = sc.placement_problems()
        if bad:
            raise L.Failure(f"placement changed after the hooks finished: {bad[0]}")
        note = sc.podman_cgroup_note()
        if note:
            L.log(f"  NOTE {name}: {note}")
        vmm = sc.vmm_pid
        if stop == "exit":
            # the VMM ends by itself (SIGTERM from inside, as a guest poweroff would): the launcher shell
            # exits after it, the container exits, and conmon's exit command runs poststop
            L.kill_pids([vmm], signal.SIGTERM)
        sc.stop(stop)
        left = sc.wait_clean(CLEAN_TIMEOUT)
        if left:
            raise L.Failure(f"left after {STOP_WORDS[stop]}: {'; '.join(left)}")
        if sc.hook_log and os.environ.get("VMMCG_E2E_SHOW_HOOK_LOG"):
            with open(sc.hook_log) as f:
                details(["hooks.log:"] + f.read().splitlines())
    except L.Failure:
        if sc.hook_log and os.path.exists(sc.hook_log):
            with open(sc.hook_log) as f:
                details(["hooks.log:"] + f.read().splitlines()[-40:])
        elif not sc.hook_log:
            details(["(--hook-log keeps the hooks' stderr, which crun throws away and podman logs only at debug)"])
        raise
    finally:
        problems = sc.close()
        if problems:
            L.log(f"  {name}: cleanup: {'; '.join(problems)}")
    if problems:
        raise L.Failure(f"the suite's own cleanup: {'; '.join(problems)}")


def installed_files_case(session):
    L.check_installed_hook_files(session.prefix, session.exes)
    L.wrapper_executable(session.prefix)


# What the hooks log when the annotation asks and the configuration does not let it count (common/stages.cpp).
ANNOTATION_IGNORED = "io.vmm-cgroup-hooks.enable=true ignored"


def cases(session):
    """(name, callable) in order. crun goes through the wrapper on hybrid hosts (e2e_lib.CRUN_WRAPPER).

    With the hooks registered through hooks.d (podman's way) every case's configuration has opt_in
    "annotation" unless it says otherwise. Through the runtime wrapper (--via-wrapper) the cases are named
    wrapper-*, their containers carry no annotation and their configuration no opt_in: --gate=runtime is
    what enables the hooks."""
    prefix = "wrapper-" if session.via_wrapper else ""

    def case(name, **kwargs):
        return (prefix + name, lambda: vm_case(session, prefix + name, **kwargs))
    out = [("installed-hook-files", lambda: installed_files_case(session))]
    for runtime in ("runc", "crun"):
        # split with a CPU limit: O gets the derived cap (a quarter of 1.5 CPUs: 37500 per 100000 us)
        out.append(case(f"{runtime}-split", runtime=runtime, mode="split", cpus=1.5))
        out.append(case(f"{runtime}-sandbox-only", runtime=runtime, mode="sandbox-only"))
    if not session.via_wrapper:
        out.append(case("runc-no-annotation", runtime="runc", mode="split", annotate=False))
        # the hooks' default, opt_in "runtime": podman runs them (the annotation matches the hooks.d files),
        # they ignore the annotation and say so
        out.append(case("runc-annotation-not-opted-in", runtime="runc", mode="split", opt_in="runtime",
                        expect_log=ANNOTATION_IGNORED))
    for runtime in ("runc", "crun"):
        out.append(case(f"{runtime}-launcher-split", runtime=runtime, mode="split", launcher=True))
    # The other two ways a container ends: podman rm -f of a running one, and the VMM exiting by itself
    # (poststop then runs in conmon's exit command, `podman container cleanup`, without --hooks-dir; through
    # the wrapper, the runtime's delete runs it).
    out.append(case("runc-split-rm-f", runtime="runc", stop="rm-f"))
    out.append(case("runc-launcher-vmm-exits", runtime="runc", launcher=True, stop="exit"))
    if not session.via_wrapper:
        # overhead_parent "root": O below one node-wide overhead root instead of beside S
        out.append(case("runc-split-overhead-root", runtime="runc", mode="split", cpus=1.5,
                        overhead_root=f"/{session.cg_prefix}overhead"))
    return out


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", help="install prefix of the hooks (meson install)")
    parser.add_argument("--build-dir", default=os.path.join(L.SOURCE_ROOT, "build"),
                        help="meson build dir, installed into a temp DESTDIR when --prefix is not given "
                        "(ignored with --prefix)")
    parser.add_argument("--cases", default="", help="run only the cases whose name matches this regex")
    parser.add_argument("--rootfs-cache", help="keep the container rootfs here (a /tmp/vmmcg-e2e-* dir) "
                        "between runs instead of building it in the run's temp dir")
    parser.add_argument("--hook-log", action="store_true", help="debugging: run each hook through a shell "
                        "wrapper that keeps its stderr (crun throws it away), shown when a case fails")
    parser.add_argument("--crun-hide", choices=sorted(L.CRUN_HIDE), default="tmpfs",
                        help="hybrid hosts: how the crun wrapper hides the cgroup2 mount (default: tmpfs, as "
                        "the README says)")
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                        help="QEMU accelerator (auto: kvm when /dev/kvm is usable, else tcg)")
    parser.add_argument("--via-wrapper", action="store_true",
                        help="run every case with podman's --runtime set to the installed runtime wrapper "
                        "(vmm-cgroup-runtime, which execs runc or crun): no hooks.d files, no annotation")
    args = parser.parse_args(argv[1:])
    # SIGTERM (meson test's timeout, kill) unwinds like an exception, so that the cleanup still runs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        print("FAIL setup: the end-to-end suite needs root (podman, cgroupfs)")
        return 1
    if args.rootfs_cache and not os.path.basename(os.path.abspath(args.rootfs_cache)).startswith(L.PREFIX):
        print(f"FAIL setup: --rootfs-cache must be named {L.PREFIX}*")
        return 1
    started = time.monotonic()
    failed = 0
    session = None
    try:
        try:
            session = L.Session(prefix=args.prefix, build_dir=None if args.prefix else args.build_dir,
                                rootfs_cache=args.rootfs_cache, hook_log=args.hook_log,
                                crun_hide=args.crun_hide, accel=args.accel, via_wrapper=args.via_wrapper)
        except L.Failure as e:
            print(f"FAIL setup: {e}", flush=True)
            return 1
        host = session.host
        L.log(f"host: cgroup {host.mode}; v1 hierarchies {', '.join(host.v1)}; hooks from {session.prefix}"
              + (f"; podman --runtime {session.wrapper} (through a shim that sets $VMMCG_RUNTIME_CONFIG)" if session.via_wrapper else "; registered through hooks.d"))
        if host.mode == "v2":
            L.log("NOTE: cgroup v2 host: the v2 expectations (S/vcpu, S/overhead) have not been exercised before")
        if not session.kvm:
            why = "--accel tcg" if args.accel == "tcg" else "/dev/kvm is not usable"
            L.log(f"NOTE: {why}: the VMs run with TCG (-accel tcg), vCPU threads CPU n/TCG")
        selected = [(n, f) for n, f in cases(session) if re.search(args.cases, n)]
        if not selected:
            print(f"FAIL setup: no case matches {args.cases!r}")
            return 1
        failed += L.run_cases(selected, L.Failure)
    finally:
        if session:
            problems = session.close()
            if problems:
                failed += 1
                print(f"FAIL cleanup: {'; '.join(problems)}", flush=True)
    L.log(f"e2e: {failed} failed, {time.monotonic() - started:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
