"""Benchmark 5, web: requests per second and p99 under gunicorn with 2 workers.

gunicorn (2 sync workers) serves bench_app: the real app plus `/bench/ping`, the trivial
route and the limit of the same server. The load generator is wrk (Debian's package),
another process, 1 thread and 4 connections for D seconds per route, its Lua `done` hook
printing requests/s and latency percentiles as JSON. `POST /appointments` gets a new free
slot in every request (bodies prepared in a file, read by the Lua script) so each is a
real booking. Without wrk, bench/loadgen.py (Python threads, also its own process) is used
and the table says so.
"""

import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from report import figure, note, ratio, result
from system import BENCH, system

LUA = r"""
local bodies, index = {}, 0
local path = os.getenv("BENCH_BODIES")
if path then for line in io.lines(path) do bodies[#bodies + 1] = line end end
request = function()
  if #bodies == 0 then return wrk.format(nil, nil) end
  index = index + 1
  return wrk.format(nil, nil, nil, bodies[(index - 1) % #bodies + 1])
end
done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format(
    '{"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f, "non2xx": %d, "errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def bodies_file(path, provider_ids, zone, count):
    """Write one JSON booking body a line, every one a distinct free future slot."""
    today = datetime.now(ZoneInfo(zone)).date()
    with open(path, "w") as out:
        for number in range(count):
            provider = provider_ids[number % len(provider_ids)]
            slot = number // len(provider_ids)
            day = today + timedelta(days=2 + slot // 12)
            local = datetime(day.year, day.month, day.day, 8 + slot % 12, tzinfo=ZoneInfo(zone))
            date = local.astimezone(UTC).isoformat()
            out.write(json.dumps({"provider_id": provider, "date": date}) + "\n")


def load(url, *, method, seconds, token, bodies=None, workdir):
    """Drive one route for `seconds`; return the load generator's JSON figures."""
    headers = [f"Authorization: Bearer {token}", "Content-Type: application/json"]
    if shutil.which("wrk"):
        script = workdir / "bench.lua"
        script.write_text(LUA.replace("wrk.format(nil, nil", f'wrk.format("{method}", nil'))
        command = ["wrk", "-t1", "-c4", f"-d{seconds}s", "-s", str(script)]
        for header in headers:
            command += ["-H", header]
        env = {"BENCH_BODIES": str(bodies)} if bodies else {}
        done = subprocess.run(
            [*command, url], capture_output=True, text=True, timeout=seconds + 60, env=env
        )
        found = re.search(r"\{\"requests\".*\}", done.stdout)
        if not found:
            raise RuntimeError(f"wrk printed no figures: {done.stdout}{done.stderr}")
        return json.loads(found.group(0)) | {"generator": "wrk -t1 -c4"}
    command = [sys.executable, str(BENCH / "loadgen.py"), url, method, str(seconds), token]
    if bodies:
        command.append(str(bodies))
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    return json.loads(done.stdout) | {"generator": "bench/loadgen.py (4 threads), no wrk"}


def run(*, full, workdir):
    seconds = 15 if full else 5
    res = result(
        "web",
        "5. Web under gunicorn (2 workers)",
        f"{seconds}s of load per route, 1 client thread and 4 connections, from a load "
        "generator in its own process; the trivial route /bench/ping on the same server is "
        "the limit.",
    )
    workdir = workdir / "web"
    with system(workdir) as sys_:
        _, token, provider_ids = sys_.people(50)
        bodies = workdir / "bodies.jsonl"
        bodies_file(bodies, provider_ids, sys_.app.config["SHOP_TIMEZONE"], 60_000)
        url = sys_.web(workers=2)
        day = int((datetime.now(UTC) + timedelta(days=1)).timestamp() * 1000)
        routes = (
            ("GET /bench/ping (trivial)", "GET", "/bench/ping", None),
            (
                "GET /providers/:id/available",
                "GET",
                f"/providers/{provider_ids[0]}/available?date={day}",
                None,
            ),
            ("POST /appointments", "POST", "/appointments", bodies),
        )
        measured = {}
        for name, method, path, body in routes:
            got = load(
                url + path,
                method=method,
                seconds=seconds,
                token=token,
                bodies=body,
                workdir=workdir,
            )
            rps = got["requests"] / got["seconds"]
            measured[name] = rps
            figure(res, f"{name} requests/s", rps, "req/s", got["generator"])
            figure(
                res,
                f"{name} p99",
                got["p99_ms"],
                "ms",
                f"p50 {got['p50_ms']:.1f} ms; {got['non2xx']} non-2xx, {got['errors']} errors",
            )
            if got["non2xx"]:
                note(res, f"{name}: {got['non2xx']} answers were not 2xx")
    ping = measured["GET /bench/ping (trivial)"]
    ratio(
        res,
        "available / trivial route (req/s)",
        measured["GET /providers/:id/available"] / ping,
        0.4,
    )
    ratio(res, "POST /appointments / trivial route (req/s)", measured["POST /appointments"] / ping)
    return res
