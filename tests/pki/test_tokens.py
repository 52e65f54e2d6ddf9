"""Join tokens in Swarm's format: ``SWMTKN-1-<50 base-36 digest>-<25 base-36 secret>``."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmlet.errors import InvalidSpec
from swarmlet.pki import JoinToken, root_digest
from swarmlet.pki.ca import new_root
from swarmlet.pki.certificate import base36
from tests.pki.builders import NOW

BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
DIGEST = root_digest(new_root(NOW).cert_pem)
SECRET = "1234567890abcdefghijklmno"
VALID = f"SWMTKN-1-{DIGEST}-{SECRET}"

digests = st.text(alphabet=BASE36, min_size=50, max_size=50)


def test_a_new_token_has_swarms_shape() -> None:
    token = JoinToken.new(DIGEST)
    assert re.fullmatch(rf"SWMTKN-1-{DIGEST}-[0-9a-z]{{25}}", str(token))
    assert token.digest == DIGEST


def test_a_token_round_trips_through_its_text() -> None:
    token = JoinToken.new(DIGEST)
    assert JoinToken.parse(str(token)) == token
    assert JoinToken.parse(VALID) == JoinToken(DIGEST, SECRET)
    assert str(JoinToken.parse(VALID)) == VALID


def test_surrounding_whitespace_is_not_part_of_a_token() -> None:
    assert JoinToken.parse(f"  {VALID}\n") == JoinToken(DIGEST, SECRET)


def test_new_tokens_have_new_secrets() -> None:
    secrets = {JoinToken.new(DIGEST).secret for _ in range(20)}
    assert len(secrets) == 20


@given(digests)
def test_any_base36_digest_round_trips(digest: str) -> None:
    assert JoinToken.parse(str(JoinToken.new(digest))).digest == digest


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_a_128_bit_secret_fits_in_25_base36_digits(number: int) -> None:
    text = base36(number, 25)
    assert len(text) == 25
    assert int(text, 36) == number


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SWMTKN-1",
        f"SWMTKN-2-{DIGEST}-{SECRET}",
        f"SWMKEY-1-{DIGEST}-{SECRET}",
        f"swmtkn-1-{DIGEST}-{SECRET}",
        f"{DIGEST}-{SECRET}",
        f"SWMTKN-1-{DIGEST[:-1]}-{SECRET}",
        f"SWMTKN-1-{DIGEST}0-{SECRET}",
        f"SWMTKN-1-{DIGEST}-{SECRET[:-1]}",
        f"SWMTKN-1-{DIGEST}-{SECRET}0",
        f"SWMTKN-1-{DIGEST.upper()}-{SECRET}",
        f"SWMTKN-1-{DIGEST}-{SECRET.upper()}",
        f"SWMTKN-1-{DIGEST}-{SECRET}-",
        f"SWMTKN-1-{DIGEST}--{SECRET}",
        f"SWMTKN-1-{DIGEST}-{SECRET}-{SECRET}",
        f"SWMTKN--1-{DIGEST}-{SECRET}",
        f"SWMTKN-1-{DIGEST}{SECRET}",
        f"SWMTKN-1-{DIGEST} -{SECRET}",
        f"SWMTKN-1-{DIGEST[:-1]}_-{SECRET}",
    ],
    ids=[
        "empty",
        "prefix-only",
        "version-2",
        "unlock-key-prefix",
        "lower-case-prefix",
        "no-prefix",
        "short-digest",
        "long-digest",
        "short-secret",
        "long-secret",
        "upper-case-digest",
        "upper-case-secret",
        "trailing-dash",
        "double-dash",
        "extra-part",
        "dash-in-prefix",
        "no-dash-before-secret",
        "inner-space",
        "not-base36",
    ],
)
def test_a_malformed_token_is_refused(text: str) -> None:
    with pytest.raises(InvalidSpec, match=r"^invalid join token$"):
        JoinToken.parse(text)


def test_rotation_keeps_the_digest_and_changes_the_secret() -> None:
    token = JoinToken.new(DIGEST)
    rotated = token.rotated()
    assert rotated.digest == token.digest
    assert rotated.secret != token.secret
    assert not rotated.matches(str(token))
    assert not token.matches(str(rotated))


def test_a_token_matches_its_own_text() -> None:
    token = JoinToken(DIGEST, SECRET)
    assert token.matches(VALID)
    assert token.matches(VALID + "\n")


@pytest.mark.parametrize(
    "other",
    ["", VALID[:-1], VALID + "0", VALID.upper(), f"SWMTKN-1-{DIGEST}-{SECRET[::-1]}"],
    ids=["empty", "prefix", "longer", "upper-case", "other-secret"],
)
def test_a_token_matches_nothing_else(other: str) -> None:
    assert not JoinToken(DIGEST, SECRET).matches(other)


@given(st.integers(min_value=0, max_value=len(VALID) - 1), st.sampled_from(BASE36 + "-X"))
def test_a_token_with_any_one_character_changed_does_not_match(index: int, char: str) -> None:
    other = VALID[:index] + char + VALID[index + 1 :]
    assert JoinToken(DIGEST, SECRET).matches(other) == (other == VALID)
