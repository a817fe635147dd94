"""What the end-to-end flows on a Redis Cluster, a moving slot and Sentinel share.

The processes' settings (a prefix whose shards reach every master, the app's overrides and
the env that matches them), a producer cancelling at a steady pace, waiting until every
mail is sent, mails per appointment, the nodes' error replies, and what a process logged.
"""

import re
import threading
from collections import Counter

from gobarber.testing import wait_until
from tests.mobile_client import Client
from tests.streams import deliveries, owed

# consumers/loop.py's line for an error it survived: "name: Type: message; retrying in 1.0s"
SURVIVED = re.compile(r"(\w+(?:Error|Exception)): (.*?); retrying in ")


def spread_prefix(cluster, shards, stem):
    """The first of `stem-0`, `stem-1`... whose shards' hash tags land on every master (on
    two at least, should no candidate reach all): the same prefix on every run."""
    best, best_masters = None, 0
    for number in range(200):
        prefix = f"{stem}-{number}"
        tags = ["{" + prefix + (f":{shard}" if shard else "") + "}" for shard in range(shards)]
        masters = len(cluster.masters_of(tags))
        if masters == len(cluster.nodes):
            return prefix
        if masters > best_masters:
            best, best_masters = prefix, masters
    assert best_masters >= 2, "no candidate prefix spreads the shards over two masters"
    return best


def cluster_settings(cluster, shards, stem):
    """The app's settings for `cluster`: `shards` shards under spread_prefix's prefix."""
    return {
        "REDIS_URL": cluster.url,
        "REDIS_CLUSTER": True,
        "MAIL_STREAM_SHARDS": shards,
        "MAIL_STREAM_PREFIX": spread_prefix(cluster, shards, stem),
    }


def process_settings(overrides):
    """The env that gives the processes the app's Redis `overrides` (a flag as "true")."""
    return {key: "true" if value is True else value for key, value in overrides.items()}


class Producer(threading.Thread):
    """Cancel `ids` over HTTP one after another, `pace` seconds apart; the ids from
    `hold_at` on wait for `resume` to be set. Its own HTTP session: requests' is not
    shared between threads."""

    def __init__(self, url, token, ids, *, pace, hold_at):
        super().__init__(daemon=True)
        self.client, self.token, self.ids = Client(url), token, ids
        self.pace, self.hold_at = pace, hold_at
        self.resume, self.quit = threading.Event(), threading.Event()
        self.statuses, self.error = [], None

    @property
    def done(self):
        return len(self.statuses)

    def run(self):
        try:
            for number, appointment_id in enumerate(self.ids):
                if number == self.hold_at:
                    self.resume.wait(120)
                if self.quit.is_set():
                    return
                answer = self.client.call("DELETE", f"/appointments/{appointment_id}", self.token)
                self.statuses.append(answer.status_code)
                self.quit.wait(self.pace)  # a steady flow, not a wait for a condition
        except Exception as error:  # reported by the test, which fails on it
            self.error = error


def mails_per_appointment(app, smtp_server):
    """How many mails the SMTP server received for each appointment (by Message-ID)."""
    appointment_of = {
        f"<{row.event_id}@gobarber.com>": row.appointment_id for row in deliveries(app)
    }
    return Counter(appointment_of.get(message["Message-ID"]) for message in smtp_server.messages)


def all_sent(app, smtp_server, *, timeout, what):
    """Wait until every row is `sent`, its mail received, and no stream owes anything."""
    wanted = {f"<{row.event_id}@gobarber.com>" for row in deliveries(app)}
    wait_until(
        lambda: wanted <= {message["Message-ID"] for message in smtp_server.messages},
        timeout=timeout,
        what=what,
    )
    # The SMTP server has a mail a moment before the worker records it as sent.
    wait_until(
        lambda: {row.status for row in deliveries(app)} == {"sent"},
        timeout=30,
        what="every row sent",
    )
    wait_until(lambda: owed(app) == 0, timeout=30, what="no pending entries")


def assert_survived(processes, *names):
    """The processes still run, and none of them logged a traceback."""
    for name in names:
        processes.assert_alive(name)
        assert "Traceback" not in processes.log(name), processes.log(name)


def error_replies(addresses, connect):
    """Error replies by kind (INFO errorstats) summed over the nodes at `addresses`, the
    ASKING calls, and the commands refused (a redirection, TRYAGAIN) or failed, by
    command. `connect(address)` gives a client that decodes replies; it is closed after."""
    totals, refused = Counter(), Counter()
    for address in addresses:
        node = connect(address)
        for name, stats in node.info("errorstats").items():
            totals[name.removeprefix("errorstat_")] += stats["count"]
        for name, stats in node.info("commandstats").items():
            command = name.removeprefix("cmdstat_")
            if command == "asking":
                totals["ASKING (calls)"] += stats["calls"]
            if stats.get("rejected_calls", 0) + stats.get("failed_calls", 0):
                refused[command] += stats.get("rejected_calls", 0) + stats.get("failed_calls", 0)
        node.close()
    return totals, refused


def reset_stats(addresses, connect):
    """Zero the statistics (CONFIG RESETSTAT) of the nodes at `addresses`."""
    for address in addresses:
        node = connect(address)
        node.config_resetstat()
        node.close()


def logged(processes, name, patterns=None, *, width=80):
    """How often the process `name` logged each of `patterns` ({what: regex}), and the
    errors it survived ("Type: message", the message cut at `width`) by count."""
    text = processes.log(name)
    counts = {what: len(re.findall(pattern, text)) for what, pattern in (patterns or {}).items()}
    survived = Counter(f"{kind}: {message[:width]}" for kind, message in SURVIVED.findall(text))
    return counts, survived


def cancel_all(client, token, ids):
    """Cancel the appointments `ids` over HTTP; return the status codes."""
    return [client.call("DELETE", f"/appointments/{i}", token).status_code for i in ids]
