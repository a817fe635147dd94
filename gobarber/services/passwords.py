"""Password hashing with bcrypt, compatible with the original backend's `$2a$08$` hashes."""

import bcrypt

# bcrypt reads at most 72 bytes; the original (bcryptjs) cut longer passwords there too.
BCRYPT_MAX_BYTES = 72
ROUNDS = 8


def hash_password(password: str, *, rounds: int = ROUNDS) -> str:
    """Return the bcrypt hash of a password."""
    secret = password.encode()[:BCRYPT_MAX_BYTES]
    return bcrypt.hashpw(secret, bcrypt.gensalt(rounds=rounds)).decode()


def password_matches(password: str, password_hash: str) -> bool:
    """Tell whether a password matches a stored bcrypt hash."""
    try:
        return bcrypt.checkpw(password.encode()[:BCRYPT_MAX_BYTES], password_hash.encode())
    except ValueError:
        return False
