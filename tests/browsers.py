"""A test client that behaves like a separate browser: each request in an app context of its own, as in
production. (Inside the test's app context requests would share its ``g`` — where Flask-Login caches the
signed-in user — and one browser would see another's user.)"""
from __future__ import annotations

from evalhub.extensions import db
from tests import factories


class Browser:
    def __init__(self, app):
        self.app, self.client = app, app.test_client()

    def _call(self, method: str, *args, **kwargs):
        with self.app.app_context():
            response = getattr(self.client, method)(*args, **kwargs)
            db.session.remove()
        return response

    def get(self, *args, **kwargs):
        return self._call("get", *args, **kwargs)

    def post(self, *args, **kwargs):
        return self._call("post", *args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._call("delete", *args, **kwargs)

    def sign_in(self, username: str, password: str = factories.PASSWORD) -> "Browser":
        response = self.post("/login", data={"username": username, "password": password})
        assert response.status_code == 302 and "/login" not in response.headers["Location"], \
            response.get_data(as_text=True)[:500]
        return self

    def signed_out(self) -> bool:
        response = self.get("/")
        return response.status_code == 302 and "/login" in response.headers["Location"]
