"""The two GoBarber clients' sessions replayed request by request, read as they read them.

The web client is a provider's dashboard: sign up as provider, sign in, upload an avatar,
save the profile, look at a day's schedule and the notifications. The mobile client is a
customer's: sign up, sign in, pick a provider and a free slot, book, list, cancel.
"""

import io
import re
from datetime import UTC, datetime, timedelta

from PIL import Image

from tests.wording import booking_text

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def png_file():
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def to_iso_string(moment):
    """`new Date().toISOString()`: UTC, milliseconds, Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_web_client_provider_dashboard(client, api, slot):
    email = "diego@barber.example.com"
    signed_up = client.post(
        "/users",
        json={"name": "Diego", "email": email, "password": "123456", "provider": True},
    )
    assert signed_up.status_code == 200
    provider_id = signed_up.json["id"]
    assert signed_up.json == {"id": provider_id, "name": "Diego", "email": email, "provider": True}

    session = client.post("/sessions", json={"email": email, "password": "123456"})
    assert session.status_code == 200
    assert session.json["user"] == {
        "id": provider_id,
        "name": "Diego",
        "email": email,
        "provider": True,
        "avatar": None,
    }
    headers = bearer(session.json["token"])

    image = png_file()
    uploaded = client.post(
        "/files",
        data={"file": (io.BytesIO(image), "avatar.png")},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 200
    file = uploaded.json
    assert set(file) == {"url", "id", "name", "path", "createdAt", "updatedAt"}
    assert file["name"] == "avatar.png" and file["path"].endswith(".png")
    assert file["url"] == f"http://testserver/files/{file['path']}"
    served = client.get(f"/files/{file['path']}")
    assert (served.status_code, served.data) == (200, image)

    profile = client.put(
        "/users",
        json={"name": "Diego Fernandes", "email": email, "avatar_id": str(file["id"])},
        headers=headers,
    )
    assert profile.status_code == 200
    assert profile.json == {
        "id": provider_id,
        "name": "Diego Fernandes",
        "email": email,
        "avatar": {"url": file["url"], "id": file["id"], "path": file["path"]},
    }

    customer = api.person("Cliente")
    start = slot(days=2, hour=9)
    booked = client.post(
        "/appointments",
        json={"provider_id": provider_id, "date": start.isoformat()},
        headers=customer.headers,
    )
    assert booked.status_code == 200

    # The dashboard asks for the chosen day at the current time of day.
    now = datetime.now(start.tzinfo)
    day = start.replace(hour=now.hour, minute=now.minute, second=now.second)
    schedule = client.get("/schedule", query_string={"date": to_iso_string(day)}, headers=headers)
    assert schedule.status_code == 200
    [row] = schedule.json
    assert row["id"] == booked.json["id"]
    assert row["date"] == to_iso_string(start)
    assert row["user"] == {"name": "Cliente"}
    assert (row["past"], row["canceled_at"]) == (False, None)

    notifications = client.get("/notifications", headers=headers)
    assert notifications.status_code == 200
    [notice] = notifications.json
    assert set(notice) == {"_id", "content", "user", "read", "createdAt", "updatedAt"}
    assert isinstance(notice["_id"], str)
    assert notice["content"] == booking_text("Cliente", start)
    assert (notice["user"], notice["read"]) == (provider_id, False)
    assert ISO_MS.match(notice["createdAt"])

    marked = client.put(f"/notifications/{notice['_id']}", headers=headers)
    assert marked.status_code == 200
    assert marked.json == {**notice, "read": True, "updatedAt": marked.json["updatedAt"]}
    assert client.get("/notifications", headers=headers).json[0]["read"] is True


def test_mobile_client_customer_books_and_cancels(client, api):
    barber = api.provider("Barbeiro")
    email = "cliente@example.com"
    signed_up = client.post(
        "/users", json={"name": "Cliente", "email": email, "password": "123456"}
    )
    assert signed_up.status_code == 200
    assert signed_up.json["provider"] is False

    session = client.post("/sessions", json={"email": email, "password": "123456"})
    assert session.status_code == 200
    assert session.json["user"]["avatar"] is None
    headers = bearer(session.json["token"])

    providers = client.get("/providers", headers=headers)
    assert providers.status_code == 200
    assert providers.json == [
        {
            "id": barber.id,
            "name": "Barbeiro",
            "email": barber.email,
            "avatar_id": None,
            "avatar": None,
        }
    ]

    # Date.now() for tomorrow, as the app's day picker sends it.
    tomorrow = int((datetime.now(UTC) + timedelta(days=1)).timestamp() * 1000)
    day_url = f"/providers/{barber.id}/available?date={tomorrow}"
    slots = client.get(day_url, headers=headers)
    assert slots.status_code == 200
    assert [entry["time"] for entry in slots.json] == [f"{h:02d}:00" for h in range(8, 20)]
    assert all(entry["available"] for entry in slots.json)
    chosen = slots.json[3]

    booked = client.post(
        "/appointments",
        json={"provider_id": barber.id, "date": chosen["value"]},
        headers=headers,
    )
    assert booked.status_code == 200
    assert booked.json["date"] == to_iso_string(datetime.fromisoformat(chosen["value"]))
    taken = {e["time"] for e in client.get(day_url, headers=headers).json if not e["available"]}
    assert taken == {chosen["time"]}

    listed = client.get("/appointments", headers=headers)
    assert listed.status_code == 200
    assert listed.json == [
        {
            "id": booked.json["id"],
            "date": booked.json["date"],
            "past": False,
            "cancelable": True,
            "provider": {"id": barber.id, "name": "Barbeiro", "avatar": None},
        }
    ]

    canceled = client.delete(f"/appointments/{booked.json['id']}", headers=headers)
    assert canceled.status_code == 200
    assert ISO_MS.match(canceled.json["canceled_at"])
    assert canceled.json["cancellation_mail"]["status"] == "queued"
    assert canceled.json["provider"] == {"name": "Barbeiro", "email": barber.email}
    assert client.get("/appointments", headers=headers).json == []
    assert all(entry["available"] for entry in client.get(day_url, headers=headers).json)
