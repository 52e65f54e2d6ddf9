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

    code, out, err = await docker(
        served, "service", "create", "-d", "--no-resolve-image", "--name", "unusual",
        "--cap-add", "NET_ADMIN", "--sysctl", "net.ipv4.ip_forward=1", "--ulimit",
        "nofile=1024:2048", "--read-only", "--limit-pids", "64", "--log-driver", "none",
        "--hostname", "{{.Service.Name}}-{{.Task.Slot}}",
        "-p", "mode=host,published=8081,target=80", IMAGE, "sleep", "1000",
    )  # fmt: skip
    assert code == 0, err
    assert sorted(err.splitlines()) == sorted(
        [
            f"TaskTemplate.ContainerSpec.CapabilityAdd {IGNORED}",
            f"TaskTemplate.ContainerSpec.Sysctls {IGNORED}",
            f"TaskTemplate.ContainerSpec.Ulimits {IGNORED}",
            f"TaskTemplate.ContainerSpec.ReadOnly {IGNORED}",
            f"TaskTemplate.Resources.Limits.Pids {IGNORED}",
            f"TaskTemplate.LogDriver {IGNORED}",
            "TaskTemplate.ContainerSpec.Hostname holds a template: templates are not expanded"
            " by swarmlet yet, the task gets the text as it is",
        ]
    )
    # Kept, as accepted: inspect shows them.
    service = store.get(Service, out.strip())
    assert (service.spec.task_template.container_spec.model_extra or {})["CapabilityAdd"] == [
        "CAP_NET_ADMIN"
    ]

    code, _, err = await docker(served, "service", "update", "-d", "--cap-drop", "CHOWN",
                                "plain")  # fmt: skip
    assert code == 0, err
    assert err == f"TaskTemplate.ContainerSpec.CapabilityDrop {IGNORED}\n"


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
        {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": IMAGE, "Groups": ["adm"]}}}
    )
    assert spec_warnings(spec) == [f"TaskTemplate.ContainerSpec.Groups {IGNORED}"]
