"""The whole booking flow once, on whichever database the run uses (SQLite smoke run too)."""


def test_book_list_and_cancel(client, api, slot):
    provider = api.provider("Barber")
    customer = api.person("Customer")
    booked = api.book(customer, provider, slot(days=2, hour=10))
    assert booked.status_code == 200, booked.json
    listed = client.get("/appointments", headers=customer.headers).json
    assert [a["id"] for a in listed] == [booked.json["id"]]
    canceled = client.delete(f"/appointments/{booked.json['id']}", headers=customer.headers)
    assert canceled.status_code == 200
    assert canceled.json["cancellation_mail"]["status"] == "queued"
    assert client.get("/appointments", headers=customer.headers).json == []
