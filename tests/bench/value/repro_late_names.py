#!/usr/bin/env python3
"""Reproduces, on demand, the misplacement the value benchmark meets on a loaded machine: the hooks call a
placement complete while vCPU threads created more than settle_quiet_ms ago do not have their names yet,
and leave them in O, outside the container's CPU limit, for good.

    python3 tests/bench/value/repro_late_names.py [--build-dir build] [--runs 4] [--name-delay-ms 300]

A thread names itself (pthread_setname_np in the new thread, as QEMU's qemu_thread_start does), so its
name comes with its first run. On a busy node that run can come hundreds of ms after the thread was
created (the benchmark's kernel timelines show 158, 424 and 816 ms at load 7-12 on 2 cores), and settle's
quiet rule (the youngest thread settle_quiet_ms old, from the threads' start times) takes the thread as
settled: it is listed as "vmmcg-value-lat", not "CPU n/KVM", so it is overhead. Here the late first run
is made deterministic: late_vmm.c's vCPU 0 names itself at once, the others NAME_DELAY_MS after their
creation (as when one of the new threads ran at once and its siblings waited on a busy CPU).
Both flows: crun (createRuntime, exec, poststart right after) and runc (poststart before exec, the
settler). Exit status 1 when any run ends with a vCPU thread outside S. Needs root and the built tree.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run_value  # noqa: E402
from run_value import CONTROLLERS, VCPU_NAME, BenchError  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--vcpus", type=int, default=2)
    parser.add_argument("--name-delay-ms", type=int, default=300)
    args = parser.parse_args()
    late_vmm = os.path.join(os.path.abspath(args.build_dir), "tests", "bench", "value", "vmmcg-value-late-vmm")
    bench_args = argparse.Namespace(build_dir=args.build_dir, period_us=100000,
                                    config_json='{"vmm_names": ["vmmcg-value-late-vmm"]}')
    try:
        bench = run_value.ValueBench(bench_args)
        run_value.set_subreaper()
    except BenchError as e:
        sys.exit(f"repro_late_names.py: {e}")
    bad = 0
    try:
        bench.setup()
        for i in range(args.runs):
            for flow in ("crun", "runc"):
                name = f"repro-{flow}-{i}"
                cid = f"{bench.prefix}-{name}"
                sandbox = bench.make_sandbox(name, None)
                state = bench.container_state(cid, sandbox, late_vmm)
                c = run_value.Container(bench, sandbox, [late_vmm, str(args.vcpus), str(args.name_delay_ms)])
                bench.live[cid] = (state, True)
                try:
                    bench.hook("createRuntime", {**state, "status": "created", "pid": c.pid})
                    if flow == "runc":
                        bench.hook("poststart", {**state, "status": "created", "pid": c.pid})
                        c.release()
                    else:
                        c.release()
                        bench.hook("poststart", {**state, "status": "running", "pid": c.pid})
                    record = bench.record(cid)
                    if record.get("settler"):
                        bench.reap(record["settler"]["pid"])
                        record = bench.record(cid)
                    time.sleep(max(0.2, 2 * args.name_delay_ms / 1000))  # every thread has its name by now
                    outside = [f"{tid} ({n}) in {where.get('cpu')}" for tid, n, where in bench.threads(c.pid)
                               if VCPU_NAME.fullmatch(n) and where.get("cpu") != sandbox]
                    bad += bool(outside)
                    print(f"{flow} run {i}: the record says complete with {len(record.get('vcpus') or [])} of "
                          f"{args.vcpus} vCPUs; vCPU threads outside S: {', '.join(outside) or 'none'}", flush=True)
                finally:
                    bench.kill(c.pid)
                    bench.hook("poststop", {**state, "status": "stopped"})
                    del bench.live[cid]
                    for controller in CONTROLLERS:
                        bench.remove_cgroup_tree(controller, sandbox)
    except BenchError as e:
        sys.exit(f"repro_late_names.py: {e}")
    finally:
        bench.cleanup()
    print(f"{bad} of {2 * args.runs} runs left vCPU threads outside the container's cgroup")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
