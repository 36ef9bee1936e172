#!/usr/bin/env python3
"""This tree's hooks against an earlier commit's, in alternating rounds, both with this tree's test VMM.

  scripts/bench --against COMMIT [--rounds 6] [--runs 15] [--vcpus 1,8,64,256] [--own-vmm] [--bound PCT]

Builds COMMIT in a detached worktree, then runs that commit's own tests/bench/run_bench.py and this tree's
alternately, ROUNDS times each, and prints, for each stage and vCPU count, the median of the round medians
with their range and the change. Alternating rounds put the drift of a shared machine on both alike: one
round of each is not enough here (a stage's median moves by up to 10% between rounds).

Both sides run this tree's test VMM (tests/test_vmm.cpp). The benchmark's VMM changed with the hooks: it
holds real KVM vCPU fds since the hooks prove vCPUs by them, and a VM of 256 KVM vCPUs that has just ended
leaves work to the kernel that runs during poststop (0.1-0.2 ms on the machine of docs/performance.md).
That is the VMM's cost, not the hooks'. --own-vmm adds a third column, COMMIT with its own VMM.

The hooks see an environment of PATH only (run_bench.py gives them no other): to compare variants of this
tree, toggle them with a file, not an environment variable.

Needs what run_bench.py needs (root, v1 cpu, cpuacct and cpuset hierarchies, /dev/kvm unless --no-kvm),
and git, meson and ninja. The worktree is removed at the end unless --keep; a kept one is used again.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

STAGES = ("createRuntime", "poststart", "poststop")
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))


class CompareError(Exception):
    pass


def run(argv, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise CompareError(f"{' '.join(argv)} exited {result.returncode}:\n{tail}")
    return result.stdout


def resolve(commit):
    return run(["git", "-C", SOURCE, "rev-parse", "--verify", f"{commit}^{{commit}}"]).strip()


def prepare_worktree(commit, directory):
    """COMMIT checked out and built in `directory`; True when this call made the worktree."""
    made = False
    if os.path.isdir(directory):
        head = run(["git", "-C", directory, "rev-parse", "HEAD"]).strip()
        if head != commit:
            raise CompareError(f"{directory} holds {head[:12]}, not {commit[:12]}: remove it or choose --work")
    else:
        run(["git", "-C", SOURCE, "worktree", "add", "--detach", directory, commit])
        made = True
    if not os.path.exists(os.path.join(directory, "tests", "bench", "run_bench.py")):
        raise CompareError(f"{commit[:12]} has no tests/bench/run_bench.py to compare with")
    build = os.path.join(directory, "build")
    if not os.path.isdir(build):
        run(["meson", "setup", build], cwd=directory)
    print(f"building {commit[:12]} in {build} ...", file=sys.stderr, flush=True)
    run(["ninja", "-C", build])
    return made


def same_vmm_build(directory, test_vmm, no_kvm):
    """A build directory of the earlier commit's hooks and bench tools with this tree's test VMM."""
    same = os.path.join(directory, "build-same-vmm")
    shutil.rmtree(same, ignore_errors=True)
    os.makedirs(os.path.join(same, "tests"))
    os.symlink("../build/hooks", os.path.join(same, "hooks"))
    os.symlink("../../build/tests/bench", os.path.join(same, "tests", "bench"))
    vmm = os.path.join(same, "tests", "test-vmm")
    if no_kvm:  # the earlier benchmark does not pass --no-kvm on: a wrapper adds it
        with open(vmm, "w") as f:
            f.write(f'#!/bin/sh\nexec {test_vmm} --no-kvm "$@"\n')
        os.chmod(vmm, 0o755)
    else:
        os.symlink(test_vmm, vmm)
    return same


def bench(tree, build, args, out, extra=()):
    argv = [sys.executable, os.path.join(tree, "tests", "bench", "run_bench.py"), "--build-dir", build,
            "--vcpus", args.vcpus, "--runs", str(args.runs), "--json", out, *extra]
    run(argv, cwd=tree)
    with open(out) as f:
        return json.load(f)


def medians(rounds, impl):
    """(vcpus, stage) -> the round medians in ms of `impl`."""
    figures = {}
    for entries in rounds:
        for e in entries:
            if e["impl"] == impl:
                figures.setdefault((e["vcpus"], e["stage"]), []).append(statistics.median(e["ns"]) / 1e6)
    return figures


def cell(values):
    return f"{statistics.median(values):.2f} [{min(values):.2f}–{max(values):.2f}]"


def change(now, before):
    return (statistics.median(now) / statistics.median(before) - 1) * 100


def report(sides, commit, bound):
    now, before = medians(sides["now"], "hooks"), medians(sides["before"], "hooks")
    own = medians(sides["own"], "hooks") if sides["own"] else None
    floor_now, floor_before = medians(sides["now"], "floor"), medians(sides["before"], "floor")
    head = f"| vCPUs | stage | now (ms) | {commit[:7]}, same VMM (ms) | change |"
    rule = "|---|---|---|---|---|"
    if own:
        head += f" {commit[:7]}, its own VMM (ms) | change |"
        rule += "---|---|"
    print(head + " floor now | floor before |")
    print(rule + "---|---|")
    worst = None
    for key in sorted(now, key=lambda k: (k[0], STAGES.index(k[1]))):
        if key not in before:
            continue
        c = change(now[key], before[key])
        if worst is None or c > worst[0]:
            worst = (c, key)
        row = f"| {key[0]} | {key[1]} | {cell(now[key])} | {cell(before[key])} | {c:+.0f}% |"
        if own:
            row += f" {cell(own[key])} | {change(now[key], own[key]):+.0f}% |"
        row += f" {statistics.median(floor_now[key]):.2f} | {statistics.median(floor_before[key]):.2f} |"
        print(row)
    rounds = len(sides["now"])
    print(f"\n{rounds} alternating round{'s' if rounds != 1 else ''}; the median of the round medians [their range]; "
          f"both with this tree's test VMM" + (" (and a third column with the commit's own)" if own else ""))
    if worst is None:
        raise CompareError("the two benchmarks have no stage and vCPU count in common")
    vcpus = worst[1][0]
    print(f"largest change: {worst[0]:+.0f}% ({worst[1][1]} at {vcpus} vCPU{'s' if vcpus != 1 else ''})")
    return bound is None or worst[0] <= bound


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--against", required=True, metavar="COMMIT", help="the earlier hooks")
    parser.add_argument("--build-dir", default="build", help="this tree's build (default: build)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--runs", type=int, default=15, help="runs per round (default: 15)")
    parser.add_argument("--vcpus", default="1,8,64,256")
    parser.add_argument("--own-vmm", action="store_true", help="also the commit with its own test VMM")
    parser.add_argument("--no-kvm", action="store_true", help="the test VMM without KVM fds, on both sides")
    parser.add_argument("--bound", type=float, metavar="PCT", help="exit 1 if a stage is slower by more")
    parser.add_argument("--work", help="the worktree (default: /var/tmp/vmmcg-bench-<commit>)")
    parser.add_argument("--keep", action="store_true", help="keep the worktree and its build for next time")
    parser.add_argument("--out", help="keep each round's figures (JSON) in this directory")
    args = parser.parse_args()
    if args.rounds < 1 or args.runs < 1:
        parser.error("--rounds and --runs must be at least 1")
    build = os.path.abspath(args.build_dir)
    test_vmm = os.path.join(build, "tests", "test-vmm")
    made = False
    directory = scratch = None
    try:
        if not os.access(test_vmm, os.X_OK):
            raise CompareError(f"{test_vmm}: not built (ninja -C {args.build_dir})")
        commit = resolve(args.against)
        directory = os.path.abspath(args.work or f"/var/tmp/vmmcg-bench-{commit[:12]}")
        made = prepare_worktree(commit, directory)
        same = same_vmm_build(directory, test_vmm, args.no_kvm)
        if args.out:
            out = args.out
            os.makedirs(out, exist_ok=True)
        else:
            out = scratch = tempfile.mkdtemp(prefix="vmmcg-compare-")
        sides = {"now": [], "before": [], "own": []}
        ours = ["--no-kvm"] if args.no_kvm else []
        for i in range(1, args.rounds + 1):
            print(f"round {i} of {args.rounds} ...", file=sys.stderr, flush=True)
            sides["before"].append(bench(directory, same, args, os.path.join(out, f"before-{i}.json")))
            sides["now"].append(bench(SOURCE, build, args, os.path.join(out, f"now-{i}.json"), ours))
            if args.own_vmm:
                sides["own"].append(bench(directory, os.path.join(directory, "build"), args,
                                          os.path.join(out, f"own-{i}.json")))
        return 0 if report(sides, commit, args.bound) else 1
    except CompareError as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        if directory and made and not args.keep:
            subprocess.run(["git", "-C", SOURCE, "worktree", "remove", "--force", directory],
                           capture_output=True, check=False)


if __name__ == "__main__":
    sys.exit(main())
