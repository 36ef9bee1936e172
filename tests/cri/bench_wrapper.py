#!/usr/bin/env python3
"""What vmm-cgroup-runtime adds to a command that is not create. Times, interleaved run by run (so that the load
of a shared machine falls on all alike), each started with posix_spawn and reaped with wait4:

  - true ARGS              /usr/bin/true: a runtime that does nothing
  - floor -> true ARGS     a static-pie C program that only execs /usr/bin/true: the cost of one more exec,
                           which no wrapper avoids
  - wrapper -> true ARGS   the stripped wrapper (as installed), its runtime.json naming /usr/bin/true
  - runc ARGS, wrapper -> runc ARGS   the same against the real runc, for scale

for ARGS `state x` and `--version`; prints the median wall time with p10-p90 (ms) and the median of minor
page faults (the exec'd runtime's included), then the wrapper's cost over the runtime alone and over the floor.

    python3 tests/cri/bench_wrapper.py [--build-dir BUILD] [--runs N]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FLOOR_C = '#include <unistd.h>\nint main(int c, char **v) { (void)c; v[0] = "/usr/bin/true"; ' \
          'execv(v[0], v); return 127; }\n'


def spawn(argv, env):
    """(wall seconds, minor faults) of one run, stdout to /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1),
                                                                (os.POSIX_SPAWN_DUP2, devnull, 2)])
        _, _, usage = os.wait4(pid, 0)
        return time.perf_counter() - t0, usage.ru_minflt
    finally:
        os.close(devnull)


def measure(variants, runs):
    """variants: [(label, argv, env)]; returns {label: (median ms, p10, p90, median faults)}."""
    samples = {label: ([], []) for label, _, _ in variants}
    for i in range(runs + 20):
        for label, argv, env in variants:
            wall, faults = spawn(argv, env)
            if i >= 20:  # warm-up
                samples[label][0].append(wall * 1e3)
                samples[label][1].append(faults)
    out = {}
    for label, (walls, faults) in samples.items():
        walls.sort()
        faults.sort()
        n = len(walls)
        out[label] = (walls[n // 2], walls[n // 10], walls[9 * n // 10], faults[n // 2])
    return out


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", default=os.path.join(os.path.dirname(os.path.dirname(HERE)), "build"))
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args(argv[1:])
    with tempfile.TemporaryDirectory(prefix="vmmcg-cri-bench-") as d:
        wrapper = os.path.join(d, "vmm-cgroup-runtime")
        subprocess.run(["strip", "-o", wrapper, os.path.join(args.build_dir, "runtime", "vmm-cgroup-runtime")],
                       check=True)
        with open(os.path.join(d, "floor.c"), "w") as f:
            f.write(FLOOR_C)
        floor = os.path.join(d, "floor")
        subprocess.run(["gcc", "-O2", "-static-pie", "-o", floor, os.path.join(d, "floor.c")], check=True)
        env = {}
        for name, runtime in (("true", "/usr/bin/true"), ("runc", "/usr/bin/runc")):
            path = os.path.join(d, f"{name}.json")
            with open(path, "w") as f:
                json.dump({"runtime": runtime}, f)
            env[name] = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "VMMCG_RUNTIME_CONFIG": path}
        print(f"{'command':<34} {'median':>7} {'p10':>7} {'p90':>7} {'faults':>7}   (ms, {args.runs} runs each)")
        for cmd in (["state", "x"], ["--version"]):
            runc_args = ["--root", d, *cmd]
            shown = " ".join(cmd)
            variants = [
                (f"true {shown}", ["/usr/bin/true", *cmd], env["true"]),
                (f"floor -> true {shown}", [floor, *cmd], env["true"]),
                (f"wrapper -> true {shown}", [wrapper, *cmd], env["true"]),
                (f"runc {shown}", ["/usr/bin/runc", *runc_args], env["runc"]),
                (f"wrapper -> runc {shown}", [wrapper, *runc_args], env["runc"]),
            ]
            stats = measure(variants, args.runs)
            for label, (median, p10, p90, faults) in stats.items():
                print(f"{label:<34} {median:7.3f} {p10:7.3f} {p90:7.3f} {faults:7d}")
            med = {label: s[0] for label, s in stats.items()}
            print(f"  wrapper: {med[f'wrapper -> true {shown}'] - med[f'true {shown}']:+.3f} ms over the runtime "
                  f"alone, {med[f'wrapper -> true {shown}'] - med[f'floor -> true {shown}']:+.3f} ms over the "
                  f"floor; {med[f'wrapper -> runc {shown}'] - med[f'runc {shown}']:+.3f} ms on runc")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
