"""The mobile client's calls over real HTTP, for tests against a running gunicorn."""

import requests


class Client:
    """The mobile client's calls over real HTTP."""

    def __init__(self, url):
        self.url = url
        self.http = requests.Session()

    def call(self, method, path, token=None, **kwargs):
        """Send one request, as the person holding `token` if given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def person(self, name, email, provider=False):
        """Sign up and in; return the new user's id and token."""
        body = {"name": name, "email": email, "password": "secret123", "provider": provider}
        created = self.call("POST", "/users", json=body)
        assert created.status_code == 200, created.text
        session = self.call("POST", "/sessions", json={"email": email, "password": "secret123"})
        return created.json()["id"], session.json()["token"]

    def book_many(self, count, token, slot):
        """Book `count` appointments over as many providers as it takes; return their ids."""
        ids, provider_number = [], 0
        while len(ids) < count:
            provider_number += 1
            provider_id, _ = self.person(
                f"Barbeiro {provider_number}",
                f"barber{provider_number}@barber.example.com",
                provider=True,
            )
            for days in (2, 3):
                for hour in range(8, 20):
                    if len(ids) == count:
                        break
                    when = slot(days=days, hour=hour).isoformat()
                    booked = self.call(
                        "POST",
                        "/appointments",
                        token,
                        json={"provider_id": provider_id, "date": when},
                    )
                    assert booked.status_code == 200, booked.text
                    ids.append(booked.json()["id"])
        return ids
