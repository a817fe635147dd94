"""People of the shop, signed up and signed in through the API itself, as the clients do."""

import uuid


class Person:
    """A signed-up, signed-in user: id, token and the headers to act as them."""

    def __init__(self, data, token, password):
        self.id = data["id"]
        self.name = data["name"]
        self.email = data["email"]
        self.token = token
        self.password = password
        self.headers = {"Authorization": f"Bearer {token}"}


class Api:
    """Sign people up and in through the API itself, as the clients do."""

    def __init__(self, client):
        self.client = client
        self.count = 0

    def person(self, name=None, *, provider=False, password="secret123"):
        """Sign a new person up and in; return them as a `Person`."""
        self.count += 1
        name = name or f"Person {self.count}"
        email = f"person{self.count}-{uuid.uuid4().hex[:6]}@barber.example.com"
        body = {"name": name, "email": email, "password": password, "provider": provider}
        created = self.client.post("/users", json=body)
        assert created.status_code == 200, created.json
        signed = self.client.post("/sessions", json={"email": email, "password": password})
        assert signed.status_code == 200, signed.json
        return Person(created.json, signed.json["token"], password)

    def provider(self, name=None):
        """Sign a new provider up and in."""
        return self.person(name, provider=True)

    def book(self, customer, provider, when):
        """Book `when` (an aware datetime or ISO text) and return the response."""
        date = when if isinstance(when, str) else when.isoformat()
        return self.client.post(
            "/appointments",
            json={"provider_id": provider.id, "date": date},
            headers=customer.headers,
        )
