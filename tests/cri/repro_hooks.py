#!/usr/bin/env python3
"""Reproductions of the hooks' problems the CRI suite found (tests/cri/README.md, "What was found"), on the
suite's harness: a pod of the handler `vmm` whose container runs a different command. Not a test: it prints
where the threads are and what is left.

    python3 tests/cri/repro_hooks.py paused|hotplug|sidecar [--build-dir BUILD]

paused   QEMU started with -S (as libvirt starts it), resumed with QMP `cont` after the settler exited: the
         kvm-nx-lpage-re worker, created at the first KVM_RUN by a vCPU thread, appears in S (finding 2).
hotplug  QEMU with -smp 1,maxcpus=4; after the settler exited, QMP device_add of one vCPU: the new
         CPU n/KVM thread runs in O, outside the container's CPU limit (finding 1).
sidecar  a container that is no VMM (sh -c "sleep 3600"): O and a record are made; the settler that
         waited its whole settle_timeout_ms (finding 3) is no longer started.
"""

import argparse
import json
import os
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cri_lib as C  # noqa: E402
import test_cri as T  # noqa: E402

L = C.L
QEMU = ["/usr/bin/qemu-system-x86_64", "-accel", "kvm", "-m", "128", "-nographic", "-nodefaults",
        "-name", "vm,debug-threads=on", "-qmp", "unix:/tmp/qmp.sock,server=on,wait=off"]
COMMANDS = {
    "paused": QEMU + ["-smp", "4", "-S"],
    "hotplug": QEMU + ["-smp", "1,maxcpus=4"],
    "sidecar": ["/bin/sh", "-c", "sleep 3600"],
}


def qmp_client(pid):
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(f"/proc/{pid}/root/tmp/qmp.sock")  # the socket inside the container's root
    f = sock.makefile("rw")
    f.readline()

    def call(cmd, **args):
        f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
        f.flush()
        while True:
            reply = json.loads(f.readline())
            if "event" not in reply:
                return reply
    call("qmp_capabilities")
    return call


def show(session, pid, layout):
    cpu = next(k for k in session.host.v1 if "cpu" in k.split(","))
    for tid, name in L.threads(pid):
        print(f"  {tid} {name:18s} cpu: {L.proc_cgroups(pid, tid).get(cpu)}")
    print("  misplaced:", L.mismatches(layout, pid) or "none")


def main(argv):
    C.ensure_debian_python(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=sorted(COMMANDS))
    parser.add_argument("--build-dir", default=os.path.join(C.SOURCE_ROOT, "build"))
    args = parser.parse_args(argv[1:])
    T.qemu_argv = lambda vcpus=4: COMMANDS[args.scenario]
    session = T.Session(args.build_dir)
    try:
        pod = T.Pod(session, args.scenario, "vmm")
        pod.run_sandbox()
        cid = pod.create_vm()
        _, _, o = T.instance_of(session, C.K8S_NS, cid, f"{pod.cgroup_parent}/{cid}")
        if args.scenario == "sidecar":
            t0 = time.monotonic()
            session.cri.call("StartContainer", container_id=cid)
            time.sleep(2)
            print("after 2 s: O exists:", L.cgroup_exists(session.host, "cpu", o),
                  "records:", os.listdir(session.record_dir), "hook processes:", session.hook_pids())
            L.wait_until(lambda: not session.hook_pids(), 90)
            print(f"the settler exited after {time.monotonic() - t0:.0f} s")
        else:
            vmm = pod.start_vm(vcpus=4 if args.scenario == "paused" else 1)
            layout = T.layout_of(session, vmm, f"{pod.cgroup_parent}/{cid}", "split", o)
            print("placed:", T.wait_placed(layout, vmm) or "right")
            L.wait_until(lambda: not session.hook_pids(), 30)
            print("settler exited:", not session.hook_pids())
            qmp = qmp_client(vmm)
            if args.scenario == "paused":
                print("cont:", qmp("cont"))
            else:
                cpu = next(c for c in qmp("query-hotpluggable-cpus")["return"] if "qom-path" not in c)
                print("device_add:", qmp("device_add", driver=cpu["type"], id="hotplugged", **cpu["props"]))
            time.sleep(2)
            show(session, vmm, layout)
        pod.stop_remove()
    finally:
        print("cleanup:", session.close() or "clean")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
