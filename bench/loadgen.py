"""A Python load generator for when wrk is missing: `loadgen.py URL METHOD S TOKEN [BODIES]`.

Four threads, one keep-alive connection each, for S seconds; prints the same JSON as the
wrk script (requests, seconds, p50/p99 in ms, non-2xx, errors). Run in its own process.
"""

import http.client
import json
import statistics
import sys
import threading
import time
from urllib.parse import urlsplit


def main():
    url, method, seconds, token = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    bodies = [None]
    if len(sys.argv) > 5:
        with open(sys.argv[5]) as source:
            bodies = source.read().splitlines()
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies, counts, lock = [], {"non2xx": 0, "errors": 0, "next": 0}, threading.Lock()
    deadline = time.perf_counter() + seconds

    def client():
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        while time.perf_counter() < deadline:
            with lock:
                body = bodies[counts["next"] % len(bodies)]
                counts["next"] += 1
            started = time.perf_counter()
            try:
                connection.request(method, path, body=body, headers=headers)
                answer = connection.getresponse()
                answer.read()
                if answer.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException):
                connection.close()
                with lock:
                    counts["errors"] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - started)
                counts["non2xx"] += not 200 <= answer.status < 300

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "seconds": time.perf_counter() - started,
                "p50_ms": cuts[49] * 1000,
                "p99_ms": cuts[98] * 1000,
                "non2xx": counts["non2xx"],
                "errors": counts["errors"],
            }
        )
    )


if __name__ == "__main__":
    main()
