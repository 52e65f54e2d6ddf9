"""Object IDs shaped like Swarm's: 25 characters of base 36."""

import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 25


def new_id() -> str:
    # Swarm's IDs are a 128-bit random number in base 36, left-padded to 25 characters.
    number = secrets.randbits(128)
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits)).rjust(ID_LENGTH, "0")
