"""What a benchmark hands back: figures with how each was measured, and ratios to targets.

Absolute numbers on a 2-core machine are noise; the ratios, measured in the same run
against a baseline on the same machine, are what the targets are about.
"""

import statistics


def result(key, title, how):
    """Start a benchmark's result: its key, title and one paragraph of how it measures."""
    return {"key": key, "title": title, "how": how, "figures": [], "ratios": [], "notes": []}


def figure(res, name, value, unit, how=""):
    """Record one measured number, with what it is and how it was measured."""
    res["figures"].append({"name": name, "value": value, "unit": unit, "how": how})
    return value


def ratio(res, name, value, target=None, *, at_least=True):
    """Record a ratio against a baseline, with its target if the issue set one."""
    passed = None
    if target is not None and value is not None:
        passed = value >= target if at_least else value <= target
    res["ratios"].append(
        {"name": name, "value": value, "target": target, "at_least": at_least, "pass": passed}
    )
    return value


def note(res, text):
    res["notes"].append(text)


def percentiles(samples):
    """p50, p95 and p99 of a list of seconds, in milliseconds."""
    ordered = sorted(samples)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": cuts[49] * 1000, "p95": cuts[94] * 1000, "p99": cuts[98] * 1000}
