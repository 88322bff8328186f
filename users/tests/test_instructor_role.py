"""The instructor role: granted by an admin, a user's rights plus authoring, never an admin's."""

from __future__ import annotations

import pytest

from devtools.helpers import internal_headers
from users.testing import ANON, PASSWORD, create_active_user, user_body


@pytest.fixture
def admin(users_app, users_db):
    return create_active_user(
        users_app, username="root", email="root@example.com", password=PASSWORD, role="admin"
    )


@pytest.fixture
def admin_headers(admin):
    return internal_headers(admin["id"], "admin")


@pytest.fixture
def alice(users_app, users_db):
    return create_active_user(
        users_app, username="alice", email="alice@example.com", password=PASSWORD
    )


def test_an_admin_makes_a_user_an_instructor(users_client, admin_headers, alice):
    response = users_client.patch(
        f"/users/{alice['id']}/role", json={"role": "instructor"}, headers=admin_headers
    )
    assert (response.status_code, response.get_json()["role"]) == (200, "instructor")
    assert response.headers["X-Sessions-Invalidated"] == alice["id"]  # the new role needs a login
    summary = users_client.get(f"/internal/users/{alice['id']}", headers=ANON).get_json()
    assert summary["role"] == "instructor"
    found = users_client.get(
        "/users/id", query_string={"user_id": alice["id"]}, headers=admin_headers
    )
    assert found.get_json()["role"] == "instructor"


def test_an_instructor_cannot_change_roles_nor_use_admin_routes(
    users_client, admin, admin_headers, alice
):
    users_client.patch(
        f"/users/{alice['id']}/role", json={"role": "instructor"}, headers=admin_headers
    )
    instructor = internal_headers(alice["id"], "instructor")
    for target, role in ((alice["id"], "admin"), (admin["id"], "user")):
        response = users_client.patch(
            f"/users/{target}/role", json={"role": role}, headers=instructor
        )
        assert (response.status_code, response.get_json()["error"]) == (403, "forbidden")
    assert users_client.get("/users", headers=instructor).status_code == 403
    assert (
        users_client.get(
            "/users/id", query_string={"user_id": admin["id"]}, headers=instructor
        ).status_code
        == 403
    )
    # A user's own routes are theirs still.
    me = users_client.get("/users/me", headers=instructor)
    assert (me.status_code, me.get_json()["role"]) == (200, "instructor")
    roles = {
        u["username"]: u["role"]
        for u in users_client.get("/users", headers=admin_headers).get_json()["users"]
    }
    assert roles == {"root": "admin", "alice": "instructor"}


def test_an_instructor_cannot_register_accounts_with_a_role(users_client, admin_headers, alice):
    instructor = internal_headers(alice["id"], "instructor")
    for role in ("instructor", "admin"):
        response = users_client.post("/users", json=user_body(role=role), headers=instructor)
        assert response.status_code == 403, role
    created = users_client.post("/users", json=user_body(role="instructor"), headers=admin_headers)
    assert (created.status_code, created.get_json()["role"]) == (201, "instructor")


def test_the_last_admin_cannot_become_an_instructor(users_client, admin, admin_headers, alice):
    demoted = users_client.patch(
        f"/users/{admin['id']}/role", json={"role": "instructor"}, headers=admin_headers
    )
    assert (demoted.status_code, demoted.get_json()["error"]) == (409, "last_admin")
    # An instructor is no admin: it does not count as the other admin either.
    users_client.patch(
        f"/users/{alice['id']}/role", json={"role": "instructor"}, headers=admin_headers
    )
    again = users_client.patch(
        f"/users/{admin['id']}/role", json={"role": "user"}, headers=admin_headers
    )
    assert (again.status_code, again.get_json()["error"]) == (409, "last_admin")
    deleted = users_client.delete(
        "/users/id", query_string={"user_id": admin["id"]}, headers=admin_headers
    )
    assert (deleted.status_code, deleted.get_json()["error"]) == (409, "last_admin")
