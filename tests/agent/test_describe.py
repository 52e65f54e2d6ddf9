"""The node description, from the engine's /info."""

from __future__ import annotations

from swarmlet.agent.describe import describe_node, engine_labels
from swarmlet.agent.fake_engine import FakeEngine
from swarmlet.genericresource import discrete, named


def test_engine_labels():
    assert engine_labels(["zone=a", "sgx", "k=v=w"]) == {"zone": "a", "sgx": "", "k": "v=w"}


async def test_describe_from_info():
    engine = FakeEngine()
    engine.info_data.update(
        Architecture="aarch64",
        OSType="linux",
        NCPU=8,
        MemTotal=16 * 1024**3,
        ServerVersion="27.3.1",
        Labels=["zone=eu-1", "disk=ssd"],
        Plugins={"Volume": ["local"], "Network": ["overlay", "bridge"], "Authorization": None},
    )
    description = await describe_node(engine, "host-1")
    assert description.to_api() == {
        "Hostname": "host-1",
        "Platform": {"Architecture": "aarch64", "OS": "linux"},
        "Resources": {"NanoCPUs": 8_000_000_000, "MemoryBytes": 16 * 1024**3},
        "Engine": {
            "EngineVersion": "27.3.1",
            "Labels": {"zone": "eu-1", "disk": "ssd"},
            # As Swarm lists them: by type, then name.
            "Plugins": [
                {"Type": "Network", "Name": "bridge"},
                {"Type": "Network", "Name": "overlay"},
                {"Type": "Volume", "Name": "local"},
            ],
        },
    }


async def test_describe_the_real_engine(docker):
    info = await docker.info()
    description = await describe_node(docker, "here")
    assert description.hostname == "here"
    assert description.platform.architecture == info["Architecture"]
    assert description.platform.os == info["OSType"]
    assert description.resources.nano_cpus == info["NCPU"] * 1_000_000_000
    assert description.resources.memory_bytes == info["MemTotal"] > 0
    assert description.engine.engine_version == info["ServerVersion"]


async def test_the_generic_resources_the_daemon_advertises_are_in_the_description():
    engine = FakeEngine()
    engine.info_data.update(NCPU=2, MemTotal=1024)
    generic = [discrete("sgx", 1), named("gpu", "UUID1"), named("gpu", "UUID2")]
    description = await describe_node(engine, "host-1", generic)
    # As `docker node inspect` shows Description.Resources on Swarm.
    assert description.to_api()["Resources"] == {
        "NanoCPUs": 2_000_000_000,
        "MemoryBytes": 1024,
        "GenericResources": [
            {"DiscreteResourceSpec": {"Kind": "sgx", "Value": 1}},
            {"NamedResourceSpec": {"Kind": "gpu", "Value": "UUID1"}},
            {"NamedResourceSpec": {"Kind": "gpu", "Value": "UUID2"}},
        ],
    }
