"""The people in the tests: one user per role, the same names in every file, one password.

alice is a superuser, bob an operator, carol a viewer, dave an agent manager, and eve is
logged in but in no group. A test that needs a second user of a role asks `user_in`.
"""

from __future__ import annotations

from functools import cache
from itertools import count

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, Permission, User
from django.utils.text import slugify

from agents.roles import ensure_roles

PASSWORD = "correct-horse-battery"
SUPERUSER = "superuser"
# Each member's role: a group's name, SUPERUSER, or None (in no group).
CAST: dict[str, str | None] = {
    "alice": SUPERUSER,
    "bob": "Operators",
    "carol": "Viewers",
    "dave": "Agent managers",
    "eve": None,
}
# The API tests name the cast by what each may do.
ROLES = {"operator": "bob", "viewer": "carol", "manager": "dave", "nobody": "eve"}
_numbers = count(1)


def user_in(role: str | None, username: str = "", *, hasher: str = "default") -> User:
    """A user in `role` (a group's name, SUPERUSER, or None) whose password is PASSWORD,
    named `username` or else after the role and a number.

    The tests' own hasher is fast; the stack's processes know only PBKDF2 (`hasher`)."""
    ensure_roles(Group, Permission)
    username = username or f"{slugify(role or 'nobody')}-{next(_numbers)}"
    superuser = role == SUPERUSER
    user, _ = User.objects.get_or_create(
        username=username, defaults={"is_staff": superuser, "is_superuser": superuser}
    )
    user.password = make_password(PASSWORD) if hasher == "default" else _hashed(hasher)
    user.save()
    user.groups.set(Group.objects.filter(name=role))
    return user


@cache
def _hashed(hasher: str) -> str:
    # PBKDF2 is slow on purpose: hash once a session, not once a user.
    return make_password(PASSWORD, hasher=hasher)


def person(name: str, *, hasher: str = "default") -> User:
    """One of the cast, by name."""
    return user_in(CAST[name], name, hasher=hasher)


def role_users() -> dict[str, User]:
    """The cast by role: operator, viewer, manager, nobody."""
    return {role: person(name) for role, name in ROLES.items()}
