#!/usr/bin/env python3
"""compare.py's arithmetic on figures made up here: the median of round medians, the change, the largest
change and --bound. The benchmark itself is run by hand (docs/performance.md), never by the tests."""
import contextlib
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402


def entry(impl, vcpus, stage, ms):
    return {"impl": impl, "vcpus": vcpus, "stage": stage, "ns": [int(x * 1e6) for x in ms], "rss_kib": [1],
            "cpu_ns": [1]}


def round_of(scale):
    """One round's figures: hooks and floor at 1 and 8 vCPUs, the hooks' poststop at 8 times `scale`."""
    entries = []
    for vcpus in (1, 8):
        for stage in compare.STAGES:
            poststop8 = scale if (vcpus, stage) == (8, "poststop") else 1.0
            entries.append(entry("hooks", vcpus, stage, [2.0 * poststop8, 2.2 * poststop8, 9.0]))
            entries.append(entry("floor", vcpus, stage, [1.0, 1.0, 1.0]))
    return entries


def report(now, before, bound):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ok = compare.report({"now": now, "before": before, "own": []}, "0123456789abcdef", bound)
    return ok, out.getvalue()


failures = []


def check(condition, what):
    if not condition:
        failures.append(what)


# Each run's median is 2.2 ms; poststop at 8 vCPUs is 1.1x in two rounds of three and 1.2x in one: the median
# of the round medians is 2.42 ms, +10%, and the range is 2.42-2.64.
now = [round_of(1.1), round_of(1.2), round_of(1.1)]
before = [round_of(1.0)] * 3
ok, text = report(now, before, 10)
check(ok, "+10% is within a bound of 10")
check("| 8 | poststop | 2.42 [2.42–2.64] | 2.20 [2.20–2.20] | +10% |" in text, "the poststop row:\n" + text)
check("| 1 | createRuntime | 2.20 [2.20–2.20] | 2.20 [2.20–2.20] | +0% | 1.00 | 1.00 |" in text,
      "an unchanged row:\n" + text)
check("largest change: +10% (poststop at 8 vCPUs)" in text, "the largest change:\n" + text)
check("3 alternating rounds" in text, "the round count:\n" + text)

ok, text = report(now, before, 9.5)
check(not ok, "+10% is over a bound of 9.5")
ok, text = report(now, before, None)
check(ok, "no bound: always true")

# Nothing in common: an error, not an empty table that reads as a pass.
try:
    report([[entry("hooks", 1, "poststop", [1.0])]], [[entry("hooks", 8, "poststop", [1.0])]], None)
    failures.append("no common stage must raise")
except compare.CompareError:
    pass

for failure in failures:
    print(f"test_compare: {failure}", file=sys.stderr)
sys.exit(1 if failures else 0)
