"""Benchmark 1, cancel latency: `DELETE /appointments/:id` with the stream pipeline, against
the same cancellation sending the provider's mail inside the request.

gunicorn (2 sync workers) serves bench_app: the real app, plus `/bench/sync-cancel/:id`,
the old way done by the benchmark with Flask-Mail. The SMTP sink takes 200 ms per mail
(aiosmtpd in its own process), and one mail worker runs, so the pipeline really sends.
One client in the benchmark process cancels N appointments the new way and N the old way,
alternating, one request at a time, timing each request (wall clock, keep-alive session).
Before each pipeline cancel it also asks `GET /bench/ping`, the trivial route of the same
server, so the cancel's p50 is compared with the least a request costs there, measured in
the same minute.
"""

import time

import requests
from report import figure, percentiles, ratio, result
from system import system

SMTP_DELAY_S = 0.2


def run(*, full, workdir):
    total = 400
    res = result(
        "cancel",
        "1. Cancel latency (SMTP server takes 200 ms a mail)",
        f"{total} cancellations each way, alternating, one at a time, from one client to "
        "gunicorn with 2 workers; each request timed end to end. Pipeline: the product's "
        "DELETE /appointments/:id (commit, XADD). Old way: bench_app's /bench/sync-cancel/:id "
        "(commit, then Flask-Mail send inside the request). Trivial route: GET /bench/ping "
        "before each pipeline cancel.",
    )
    with system(workdir / "cancel", smtp_delay=SMTP_DELAY_S) as sys_:
        customer_id, token, provider_ids = sys_.people(10)
        ids = sys_.appointments(
            2 * total, customer_id=customer_id, provider_ids=provider_ids, canceled=False
        )
        url = sys_.web(workers=2)
        sys_.processes.worker("worker-1")
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        samples = {"pipeline": [], "old": [], "ping": []}
        for number, appointment_id in enumerate(ids):
            way = "pipeline" if number % 2 == 0 else "old"
            if way == "pipeline":
                started = time.perf_counter()
                answer = http.get(url + "/bench/ping", timeout=30)
                samples["ping"].append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
            path = (
                f"/appointments/{appointment_id}"
                if way == "pipeline"
                else f"/bench/sync-cancel/{appointment_id}"
            )
            started = time.perf_counter()
            answer = http.delete(url + path, timeout=30)
            samples[way].append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.text
        sys_.wait_sent(total, timeout=120)
    new, old = percentiles(samples["pipeline"]), percentiles(samples["old"])
    ping = percentiles(samples["ping"])
    for name, cuts in (
        ("pipeline (stream)", new),
        ("old way (mail in request)", old),
        ("GET /bench/ping (trivial route)", ping),
    ):
        for cut in ("p50", "p95", "p99"):
            figure(res, f"{name} {cut}", cuts[cut], "ms")
    ratio(res, "old way p99 / pipeline p99", old["p99"] / new["p99"], 20.0)
    ratio(res, "old way p50 / pipeline p50", old["p50"] / new["p50"])
    ratio(res, "pipeline p50 / trivial route p50", new["p50"] / ping["p50"], 4.0, at_least=False)
    return res
