"""The pages' forms (the shop's and the admin's), posted as a browser posts them: with
their CSRF token."""

import re

# The hidden input, however its attributes are ordered (WTForms puts `id` first).
TOKEN = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')


def form_token(client, path="/admin/login"):
    """Return the CSRF token the forms of the page at `path` carry."""
    return TOKEN.search(client.get(path).get_data(as_text=True)).group(1)


def admin_sign_in(client, email, password):
    """Post the sign-in form with the token its page gave; return the answer."""
    fields = {"email": email, "password": password, "csrf_token": form_token(client)}
    return client.post("/admin/login", data=fields)


def pages_sign_in(client, person):
    """Sign `person` in to the shop's pages, as the sign-in form does; return the answer."""
    fields = {"email": person.email, "password": person.password}
    fields["csrf_token"] = form_token(client, "/app/sign-in")
    answer = client.post("/app/sign-in", data=fields)
    assert answer.status_code == 302, answer.text
    return answer


def pages_client(app, person):
    """A test client of its own, signed in on the shop's pages as `person`."""
    client = app.test_client()
    pages_sign_in(client, person)
    return client
