#!/usr/bin/env python3
"""The value benchmark's pictures, from its JSON (run_value.py --json): Debian's python3-matplotlib.

    python3 tests/bench/value/plot.py FIGURES.json DIR

  value-latency.png     the three modes' latency distributions (CDF): QMP round trips, guest I/O
  value-cpu.png         vCPU and overhead CPU of each mode, stacked, against the container's limit
  value-placement.png   time to placement of each flow (box plot)
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MODES = ("no-limit", "sandbox-only", "split")
COLORS = {"no-limit": "#7f7f7f", "sandbox-only": "#d62728", "split": "#1f77b4"}
LABELS = {"no-limit": "no limit", "sandbox-only": "sandbox-only (quota on the whole VMM)",
          "split": "split (the hooks)"}


def caption(data, what="QEMU TCG"):
    m = data["machine"]
    return (f"Linux {m['kernel']}, {m['cpu']}, {m['cores']} cores, {what}; "
            f"loadavg {data['loadavg_before'].split()[0]} before, {data['loadavg_after'].split()[0]} after")


def percentile(values, fraction):
    """As run_bench.percentile (linear between ranks), so that the legends match the printed table."""
    ordered = sorted(values)
    index = fraction * (len(ordered) - 1)
    low = int(index)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


def cdf(ax, values, **kwargs):
    ordered = sorted(values)
    n = len(ordered)
    ax.step(ordered, [(i + 1) / n for i in range(n)], where="post", **kwargs)


def measured(data):
    return [r for r in data["modes"] if "misplaced" not in r]


def latency(data, path):
    runs = measured(data)
    args = data["args"]
    panels = [("qmp_ms", "QMP query-status round trip (main loop)"),
              ("io_read_ms", "guest 4 KiB O_DIRECT read (virtio-blk)"),
              ("io_write_ms", "guest 4 KiB O_DIRECT write (virtio-blk)")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), sharey=True)
    for ax, (key, title) in zip(axes, panels):
        for mode in MODES:
            values = [v for r in runs if r["mode"] == mode for v in r[key]]
            if not values:
                continue
            p99 = percentile(values, 0.99)
            cdf(ax, values, color=COLORS[mode], label=f"{LABELS[mode]}: p99 {p99:.1f} ms")
        ax.set_xscale("log")
        ax.set_xlabel("latency, ms (log)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.axhline(0.99, color="black", lw=0.5, ls=":")
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("fraction of requests")
    fig.suptitle(f"{args['vcpus']} spinning vCPUs, {args['limit']} CPU limit, one request every "
                 f"{args['interval_ms']} ms for {args['window']} s x {args['reps']} runs a mode\n{caption(data)}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cpu(data, path):
    runs = measured(data)
    args = data["args"]
    fig, ax = plt.subplots(figsize=(7, 4.8))
    xs = range(len(MODES))
    for x, mode in zip(xs, MODES):
        rs = [r["cpu"] for r in runs if r["mode"] == mode]
        if not rs:
            continue
        vcpu = sorted(c["vcpu_cpus"] for c in rs)[len(rs) // 2]
        over = sorted(c["overhead_cpus"] for c in rs)[len(rs) // 2]
        ax.bar(x, vcpu, color=COLORS[mode])
        ax.bar(x, over, bottom=vcpu, color=COLORS[mode], alpha=0.35, hatch="//")
        lo, hi = min(c["vcpu_cpus"] for c in rs), max(c["vcpu_cpus"] for c in rs)
        ax.errorbar(x, vcpu, yerr=[[vcpu - lo], [hi - vcpu]], color="black", capsize=4, lw=1)
        ax.text(x, vcpu / 2, f"{vcpu:.2f}", ha="center", va="center", color="white", fontsize=10)
        ax.text(x, vcpu + over + 0.03, f"+{over:.2f}", ha="center", va="bottom", fontsize=9)
    ax.axhline(args["limit"], color="black", ls="--", lw=1)
    ax.text(len(MODES) - 0.5, args["limit"], f" limit {args['limit']} CPU", va="bottom", ha="right", fontsize=9)
    ax.set_xticks(list(xs), [LABELS[m].split(" (")[0] for m in MODES])
    ax.set_ylabel("CPUs (utime+stime over the window)")
    ax.set_title(f"vCPU vs overhead CPU, median of {args['reps']} runs (bars: min-max of vCPUs)\n{caption(data)}",
                 fontsize=9)
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(facecolor="#555555", label="vCPU threads (solid)"),
                       Patch(facecolor="#555555", alpha=0.35, hatch="//", label="overhead threads (hatched)")],
              fontsize=9, loc="upper left")
    ax.set_ylim(0, max(2.2, ax.get_ylim()[1]))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def placement(data, path):
    runs = data["placement"]
    flows = [f for f in ("runc", "runc-late", "crun", "crun-late-vcpus") if any(r["flow"] == f for r in runs)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, (key, title) in zip(axes, (("exec_to_place_ms", "VMM exec -> every thread in place"),
                                       ("vcpu_to_place_ms", "last vCPU created -> every thread in place"))):
        series = [[r[key] for r in runs if r["flow"] == f and key in r] for f in flows]
        ax.boxplot(series, labels=flows, whis=(1, 99), showfliers=True)
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("ms (log); whiskers p1-p99")
    fig.suptitle(f"time to placement, test VMM, {data['args']['tp_runs']} runs a flow\n{caption(data, 'test VMM')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_all(data, directory):
    os.makedirs(directory, exist_ok=True)
    written = []
    if data.get("modes"):
        for name, fn in (("value-latency.png", latency), ("value-cpu.png", cpu)):
            fn(data, os.path.join(directory, name))
            written.append(os.path.join(directory, name))
    if data.get("placement"):
        placement(data, os.path.join(directory, "value-placement.png"))
        written.append(os.path.join(directory, "value-placement.png"))
    return written


if __name__ == "__main__":
    import json
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        for written in make_all(json.load(f), sys.argv[2]):
            print(f"wrote {written}")
