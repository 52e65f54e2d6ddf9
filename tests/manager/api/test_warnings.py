"""A spec field swarmlet keeps but does not honour comes back in the response's Warnings, which
the stock CLI prints; a spec of honoured fields gets none."""

from __future__ import annotations

from swarmlet.manager.api.unsupported import spec_warnings
from swarmlet.models import Service, ServiceSpec

IMAGE = "swarmlet-test/busybox:latest"
IGNORED = "is not supported by swarmlet yet: it is kept in the spec and ignored"


async def test_the_cli_prints_a_warning_for_each_field_not_honoured(docker, served, store):
    code, out, err = await docker(
        served, "service", "create", "-d", "--no-resolve-image", "--name", "plain",
        "--replicas", "2", "--env", "A=1", "--workdir", "/tmp", "--user", "nobody",
        "--init", "--limit-memory", "64m", "--reserve-cpu", "0.1", "--restart-condition",
        "on-failure", "--update-parallelism", "2", "--update-failure-action", "rollback",
        "--rollback-monitor", "2s", "--constraint", "node.role==manager",
        "--mount", "type=tmpfs,target=/scratch", "-p", "8080:80", IMAGE, "sleep", "1000",
    )  # fmt: skip
    assert code == 0, err
    assert err == ""  # everything the CLI sent for these flags is honoured

    # Every ContainerSpec and Resources field the CLI sends reaches the container now: no
    # warning for any of them.
    code, out, err = await docker(
        served, "service", "create", "-d", "--no-resolve-image", "--name", "everything",
        "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", "--sysctl", "net.ipv4.ip_forward=1",
        "--ulimit", "nofile=1024:2048", "--read-only", "--limit-pids", "64", "--limit-cpu",
        "0.5", "--reserve-memory", "32m", "--log-driver", "json-file", "--log-opt",
        "max-size=1m", "--group", "1234", "--dns", "10.9.9.9", "--dns-option", "ndots:2",
        "--dns-search", "example.test", "--host", "db.test:10.1.2.3", "--tty",
        "--isolation", "default", "--stop-signal", "SIGUSR1", "--init",
        "-p", "mode=host,published=8081,target=80", IMAGE, "sleep", "1000",
    )  # fmt: skip
    assert code == 0, err
    assert err == ""

    # What is still not honoured warns, and is kept, as accepted: inspect shows it.
    code, out, err = await docker(
        served, "service", "create", "-d", "--no-resolve-image", "--name", "unusual",
        "--credential-spec", "file://spec.json", IMAGE, "sleep", "1000",
    )  # fmt: skip
    assert code == 0, err
    assert err == f"TaskTemplate.ContainerSpec.Privileges {IGNORED}\n"
    service = store.get(Service, out.strip())
    privileges = (service.spec.task_template.container_spec.model_extra or {})["Privileges"]
    assert privileges["CredentialSpec"]["File"] == "spec.json"

    code, _, err = await docker(served, "service", "update", "-d", "--credential-spec",
                                "registry://spec", "plain")  # fmt: skip
    assert code == 0, err
    assert err == f"TaskTemplate.ContainerSpec.Privileges {IGNORED}\n"


def test_empty_values_of_unknown_fields_warn_of_nothing():
    spec = ServiceSpec.from_api(
        {
            "Name": "web",
            "TaskTemplate": {
                "ContainerSpec": {"Image": IMAGE, "Privileges": {"CredentialSpec": None},
                                  "DNSConfig": {}, "ReadOnly": False, "Groups": []},
                "Resources": {"Limits": {"Pids": 0}},
            },
        }
    )  # fmt: skip
    assert spec_warnings(spec) == []
    spec = ServiceSpec.from_api(
        {
            "Name": "web",
            "TaskTemplate": {
                "ContainerSpec": {"Image": IMAGE, "Groups": ["adm"], "CapabilityAdd": ["CAP_X"]},
                "Resources": {"Limits": {"Pids": 5}, "SwapBytes": 0, "MemorySwappiness": 10},
            },
        }
    )
    assert spec_warnings(spec) == []
    spec = ServiceSpec.from_api(
        {
            "Name": "web",
            "TaskTemplate": {
                "ContainerSpec": {"Image": IMAGE, "Privileges": {"NoNewPrivileges": True}},
            },
        }
    )
    assert spec_warnings(spec) == [f"TaskTemplate.ContainerSpec.Privileges {IGNORED}"]
