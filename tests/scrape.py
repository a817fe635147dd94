"""What `/metrics` says, parsed as Prometheus text."""

from prometheus_client.parser import text_string_to_metric_families


def metric_values(client):
    """Scrape /metrics; return {(sample name, sorted label pairs): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.data.decode())
        for sample in family.samples
    }
