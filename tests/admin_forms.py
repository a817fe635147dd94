"""The admin page's forms, posted as a browser posts them: with their CSRF token."""

import re

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(client, path="/admin/login"):
    """Return the CSRF token the forms of the page at `path` carry."""
    return TOKEN.search(client.get(path).get_data(as_text=True)).group(1)


def admin_sign_in(client, email, password):
    """Post the sign-in form with the token its page gave; return the answer."""
    fields = {"email": email, "password": password, "csrf_token": form_token(client)}
    return client.post("/admin/login", data=fields)
