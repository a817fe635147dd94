"""Password hashing with bcrypt at the configured cost (`BCRYPT_ROUNDS`).

Hashes of the `$2a$08$` form the original backend wrote still verify, and are worth
rehashing at the current cost at the next successful sign-in.
"""

import secrets
from functools import cache

import bcrypt
from flask import current_app

# bcrypt reads at most 72 bytes. A longer password is refused, never cut: cut, every
# password sharing its first 72 bytes would open the account.
BCRYPT_MAX_BYTES = 72


def fits_bcrypt(password: str) -> bool:
    """Tell whether a password is short enough, in UTF-8 bytes, for bcrypt."""
    return len(password.encode()) <= BCRYPT_MAX_BYTES


def configured_rounds() -> int:
    """Return the bcrypt cost new hashes get (the app's `BCRYPT_ROUNDS`)."""
    return current_app.config["BCRYPT_ROUNDS"]


def hash_password(password: str, *, rounds: int | None = None) -> str:
    """Return the bcrypt hash of a password, at the configured cost unless told otherwise."""
    if not fits_bcrypt(password):
        raise ValueError(f"a password cannot be longer than {BCRYPT_MAX_BYTES} bytes")
    salt = bcrypt.gensalt(rounds=configured_rounds() if rounds is None else rounds)
    return bcrypt.hashpw(password.encode(), salt).decode()


def password_matches(password: str, password_hash: str) -> bool:
    """Tell whether a password matches a stored bcrypt hash."""
    if not fits_bcrypt(password):
        return False
    try:
        return bcrypt.checkpw(password.encode(), password_hash.encode())
    except ValueError:
        return False


def hash_cost(password_hash: str) -> int | None:
    """Return the cost a bcrypt hash was made with (`$2a$08$...` -> 8), None if unreadable."""
    parts = password_hash.split("$")
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    return int(parts[2])


def needs_rehash(password_hash: str) -> bool:
    """Tell whether a hash is cheaper than the configured cost."""
    cost = hash_cost(password_hash)
    return cost is not None and cost < configured_rounds()


@cache
def _dummy_hash(rounds: int) -> bytes:
    return hash_password(secrets.token_urlsafe(32), rounds=rounds).encode()


def check_nothing() -> None:
    """Spend what checking a password costs, for a sign-in that has no user to check."""
    # Without it an unknown email answers in microseconds and a wrong password in tens
    # of milliseconds, which tells anyone which emails have accounts.
    bcrypt.checkpw(b"not the password", _dummy_hash(configured_rounds()))
