"""Run GoBarber's eight benchmarks: `python bench/run.py [--full]` (or `make bench`).

Prints one table (each figure with how it was measured, each ratio next to its target
with PASS or MISS) and writes bench/results/results.json, table.txt and chart.png. With
`--only`, the benchmarks not run keep their last figures in those files, each marked with
the run that measured it.
"""

import argparse
import json
import logging
import math
import platform
import sys
import tempfile
import textwrap
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # the bench modules; gobarber is installed (pip install -e .)

import cancel_latency  # noqa: E402
import mail_throughput  # noqa: E402
import memory  # noqa: E402
import queue_overhead  # noqa: E402
import recovery  # noqa: E402
import scale  # noqa: E402
import slow_smtp  # noqa: E402
import web  # noqa: E402

BENCHMARKS = (
    cancel_latency,
    queue_overhead,
    mail_throughput,
    recovery,
    web,
    memory,
    scale,
    slow_smtp,
)
RESULTS = BENCH / "results"


def number(value):
    if value is None:
        return "-"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def table(results, *, measured=False):
    """The printed table: figures, then ratios with their targets; `measured` says which
    run measured each benchmark (for a file mixing runs)."""
    lines = []
    for res in results:
        title = res["title"]
        if measured and res.get("measured"):
            title += f"  [{res['measured']}]"
        lines += ["", title, "  " + res["how"]]
        if "error" in res:
            lines.append(f"  FAILED: {res['error']}")
        for fig in res.get("figures", []):
            how = f"  ({fig['how']})" if fig["how"] else ""
            lines.append(f"  {fig['name']:<72} {number(fig['value']):>10} {fig['unit']}{how}")
        for rat in res.get("ratios", []):
            verdict = {True: "PASS", False: "MISS", None: ""}[rat["pass"]]
            target = ""
            if rat["target"] is not None:
                # Results written before ratios kept their direction tell it by name.
                at_least = rat.get("at_least", "after" not in rat["name"])
                sign = ">=" if at_least else "<="
                target = f"target {sign} {number(rat['target'])}"
            lines.append(
                f"  ratio: {rat['name']:<65} {number(rat['value']):>10}  {target:<16} {verdict}"
            )
        for text in res.get("notes", []):
            lines.append(f"  note: {text}")
    return "\n".join(lines)


def chart(results, path):
    """One panel per benchmark: its figures in their main unit, as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, math.ceil(len(results) / 2))
    fig, axes = plt.subplots(rows, 2, figsize=(14, 13 * rows / 3), squeeze=False)
    for axis, res in zip(axes.flat, results, strict=False):
        figures = [f for f in res.get("figures", []) if f["value"] is not None]
        if not figures:
            axis.set_title(res["title"] + " (no data)", fontsize=9)
            continue
        units = [f["unit"] for f in figures]
        unit = max(dict.fromkeys(units), key=units.count)  # on a tie, the first listed
        shown = [f for f in figures if f["unit"] == unit]
        names = [f["name"][:48] for f in shown]
        axis.barh(names, [f["value"] for f in shown], color="#4c72b0")
        axis.invert_yaxis()
        axis.set_xlabel(unit)
        axis.tick_params(axis="y", labelsize=7)
        verdicts = ", ".join(
            f"{r['name'][:34]}={number(r['value'])}"
            + ("" if r["pass"] is None else (" PASS" if r["pass"] else " MISS"))
            for r in res.get("ratios", [])
        )
        verdicts = "\n".join(textwrap.wrap(verdicts, 100))
        axis.set_title(f"{res['title']}\n{verdicts}", fontsize=8)
    for axis in list(axes.flat)[len(results) :]:
        axis.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def owner(module, res):
    """Whether `res` (as results.json holds it) is the result of `module`: its key, or a
    failed run's module name."""
    return module.__name__.startswith(res.get("key", "\0"))


def merged(results):
    """With `--only`: the results of this run in place of their earlier ones in
    results.json, every other benchmark's last result kept, in the order of BENCHMARKS."""
    path = RESULTS / "results.json"
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return results
    run = earlier.get("run", {})
    earlier_stamp = f"{run.get('mode', '?')} run of {run.get('at', '?')}"
    kept = []
    for module in BENCHMARKS:
        ran = [res for res in results if owner(module, res)]
        if ran:
            kept += ran
            continue
        for res in earlier.get("benchmarks", []):
            if owner(module, res):
                kept.append({**res, "measured": res.get("measured", earlier_stamp)})
    return kept + [res for res in results if res not in kept]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the issue's N (slower)")
    parser.add_argument("--only", nargs="*", help="run only these (cancel, queue, mail, ...)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    RESULTS.mkdir(exist_ok=True)
    results, started = [], time.perf_counter()
    at = datetime.now(UTC).isoformat(timespec="seconds")
    stamp = f"{'full' if args.full else 'quick'} run of {at}"
    with tempfile.TemporaryDirectory(prefix="gobarber-bench-") as workdir:
        for module in BENCHMARKS:
            key = module.__name__
            if args.only and not any(key.startswith(name) for name in args.only):
                continue
            print(f"running {key} ...", file=sys.stderr, flush=True)
            began = time.perf_counter()
            try:
                res = module.run(full=args.full, workdir=Path(workdir))
            except Exception as error:  # noqa: BLE001 - one failure must not hide the rest
                traceback.print_exc()
                res = {"key": key, "title": key, "how": "", "error": repr(error)}
            res["seconds"] = round(time.perf_counter() - began, 1)
            res["measured"] = stamp
            results.append(res)
    text = table(results)
    print(text)
    every = merged(results) if args.only else results
    report = {
        "run": {
            "mode": "full" if args.full else "quick",
            "at": at,
            "seconds": round(time.perf_counter() - started, 1),
            "machine": f"{platform.machine()}, {platform.python_implementation()} "
            f"{platform.python_version()}",
            "only": args.only or None,
        },
        "benchmarks": every,
    }
    (RESULTS / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    mixed = len({res.get("measured") for res in every}) > 1
    (RESULTS / "table.txt").write_text(table(every, measured=mixed).lstrip("\n") + "\n")
    chart(every, RESULTS / "chart.png")
    print(
        f"\nwrote {RESULTS / 'results.json'}, table.txt and chart.png "
        f"({report['run']['seconds']:.0f}s)"
    )


if __name__ == "__main__":
    main()
