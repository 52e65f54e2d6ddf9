"""Generic resources as SwarmKit's api/genericresource parses, counts, claims and formats them
(its messages kept word for word, as dockerd prints them)."""

from __future__ import annotations

import pytest

from swarmlet.genericresource import (
    ParseError,
    claim,
    consume,
    discrete,
    env,
    flag_value,
    free_table,
    has_enough,
    named,
    parse,
    wanted,
)


def test_one_integer_is_discrete_and_other_values_are_a_named_set() -> None:
    assert parse(["sgx=2"]) == [discrete("sgx", 2)]
    assert parse(["gpu=UUID1", "gpu=UUID2", " fpga = 0 "]) == [
        named("gpu", "UUID1"),
        named("gpu", "UUID2"),
        discrete("fpga", 0),
    ]
    # Go's ParseInt takes a sign; a lone non-integer is a named set of one.
    assert parse(["sgx=+3", "ssd=x1"]) == [discrete("sgx", 3), named("ssd", "x1")]


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        (
            ["foo=bar", "foo=1"],
            "could not parse GenericResource: mixed discrete and named resources in expression"
            " 'foo=[bar 1]'",
        ),
        # Two integers under one kind are neither one count nor a set of names.
        (
            ["sgx=1", "sgx=2"],
            "could not parse GenericResource: mixed discrete and named resources in expression"
            " 'sgx=[1 2]'",
        ),
        (
            ["foo"],
            "could not parse GenericResource: incorrect term foo, missing '=' or malformed"
            " expression",
        ),
        (
            ["a=b=c"],
            "could not parse GenericResource: incorrect term a=b=c, missing '=' or malformed"
            " expression",
        ),
        (["sgx=-1"], "could not parse GenericResource: cannot ask for negative resource sgx"),
    ],
)
def test_what_swarmkit_refuses(terms: list[str], message: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(terms)
    assert str(caught.value) == message


def test_the_flag_needs_an_equals_sign() -> None:
    assert flag_value("sgx=1") == "sgx=1"
    with pytest.raises(ValueError, match=r"^invalid node-generic-resource format `sgx` expected"):
        flag_value("sgx")


def test_env_is_one_variable_per_kind_in_upper_case() -> None:
    assigned = [named("gpu", "UUID1"), discrete("sgx", 1), named("gpu", "UUID2")]
    assert env(assigned) == ["DOCKER_RESOURCE_GPU=UUID1,UUID2", "DOCKER_RESOURCE_SGX=1"]
    assert env([discrete("nvidia-gpu", 2)]) == ["DOCKER_RESOURCE_NVIDIA-GPU=2"]
    assert env([]) == []


def test_has_enough_claim_and_consume() -> None:
    free = free_table([discrete("sgx", 2), named("gpu", "a"), named("gpu", "b")])
    assert free == {"sgx": 2, "gpu": ["a", "b"]}
    assert free is not None
    assert has_enough(free, (("sgx", 2), ("gpu", 2)))
    assert not has_enough(free, (("sgx", 3),))
    assert not has_enough(free, (("fpga", 0),))  # a kind the node lacks fits nothing
    assert not has_enough(None, (("sgx", 1),))
    assert claim(free, (("sgx", 1), ("gpu", 1))) == [discrete("sgx", 1), named("gpu", "a")]
    assert free == {"sgx": 1, "gpu": ["b"]}
    consume(free, [named("gpu", "b"), discrete("sgx", 1)])
    assert free == {}  # used up: gone, as SwarmKit removes them
    assert not has_enough(free, (("sgx", 0),))


def test_a_named_reservation_is_wanted_as_nothing_a_node_has() -> None:
    assert wanted([discrete("sgx", 1)]) == (("sgx", 1),)
    assert wanted([named("sgx", "x")]) == (("sgx", -1),)
    assert not has_enough({"sgx": ["x"]}, wanted([named("sgx", "x")]))
    assert wanted(None) == ()
