"""SwarmKit's template package: a task's container spec and a templated payload, expanded for
the task on its node, with SwarmKit's context and its wrapped errors."""

from __future__ import annotations

import pytest

from swarmlet.models import (
    ConfigReference,
    ContainerSpec,
    FileTarget,
    NodeDescription,
    Platform,
    SecretReference,
    Task,
    TaskSpec,
)
from swarmlet.template import TemplateError
from swarmlet.template.expand import (
    Payloads,
    expand_container_spec,
    expand_payload,
    expand_task,
    validate_container_spec,
)

NODE = NodeDescription(hostname="host-1", platform=Platform(architecture="x86_64", os="linux"))


def task(slot: int | None = 2, node_id: str = "node1", **container: object) -> Task:
    spec = ContainerSpec.model_validate({"Image": "busybox", **container})
    return Task(
        id="task1",
        service_id="svc1",
        service_name="web",
        service_labels={"tier": "front"},
        slot=slot,
        node_id=node_id,
        spec=TaskSpec(container_spec=spec),
    )


def test_env_hostname_and_mounts_are_expanded_for_the_task_on_its_node():
    expanded = expand_container_spec(
        NODE,
        task(
            Env=[
                "WHERE={{.Node.Hostname}}",
                "WHO={{.Service.Name}}.{{.Task.Slot}}",
                "WHAT={{.Node.Platform.OS}}-{{.Node.Platform.Architecture}}",
                'TIER={{index .Service.Labels "tier"}}',
                "BARE",
                "IDS={{.Service.ID}} {{.Node.ID}} {{.Task.ID}} {{.Task.Name}}",
            ],
            Hostname="{{.Service.Name}}-{{.Task.Slot}}",
            Mounts=[
                {
                    "Type": "volume",
                    "Source": "data-{{.Task.Slot}}",
                    "Target": "/data/{{.Node.ID}}",
                    "VolumeOptions": {
                        "Labels": {"owner": "{{.Service.Name}}"},
                        "DriverConfig": {"Name": "local", "Options": {"o": "{{.Task.ID}}"}},
                    },
                },
                {"Type": "bind", "Source": "/srv/{{.Node.Hostname}}", "Target": "/srv"},
            ],
        ),
    )
    assert expanded.env == [
        "WHERE=host-1",
        "WHO=web.2",
        "WHAT=linux-x86_64",
        "TIER=front",
        "BARE",
        "IDS=svc1 node1 task1 web.2.task1",
    ]
    assert expanded.hostname == "web-2"
    volume, bind = expanded.mounts or []
    assert (volume["Source"], volume["Target"]) == ("data-2", "/data/node1")
    assert volume["VolumeOptions"]["Labels"] == {"owner": "web"}
    assert volume["VolumeOptions"]["DriverConfig"] == {"Name": "local", "Options": {"o": "task1"}}
    assert bind["Source"] == "/srv/host-1"


def test_a_task_without_a_slot_has_its_node_for_slot_and_name():
    expanded = expand_container_spec(NODE, task(slot=None, Env=["S={{.Task.Slot}} {{.Task.Name}}"]))
    assert expanded.env == ["S=node1 web.node1.task1"]


def test_without_the_nodes_description_its_hostname_and_platform_are_empty():
    expanded = expand_container_spec(None, task(Env=["H=[{{.Node.Hostname}}{{.Node.Platform}}]"]))
    assert expanded.env == ["H=[{ }]"]


def test_expand_task_changes_only_the_container_spec():
    original = task(Env=["A={{.Task.Slot}}"], Hostname="h{{.Task.Slot}}")
    expanded = expand_task(NODE, original)
    assert expanded.spec.container_spec.env == ["A=2"]
    assert expanded.spec.container_spec.hostname == "h2"
    assert expanded.replace(spec=original.spec) == original


def test_a_spec_without_templates_is_the_task_as_it_is():
    plain = task(Env=["A=1", "B", "C=}}"], Hostname="h1")
    assert expand_task(NODE, plain) is plain
    # One template anywhere, and it is expanded.
    assert expand_task(NODE, task(Env=["A=1", "B={{.Task.Slot}}"])).spec.container_spec.env == [
        "A=1",
        "B=2",
    ]


FIELD_ERROR = (
    'template: expansion:1:7: executing "expansion" at <.Node.Hostnme>: can\'t evaluate field'
    " Hostnme in type struct { ID string; Hostname string; Platform template.Platform }"
)


@pytest.mark.parametrize(
    ("container", "message"),
    [
        (
            {"Env": ["A=1", "B={{.Node.Hostnme}}"]},
            f'expanding env failed: expanding env "B={{{{.Node.Hostnme}}}}": {FIELD_ERROR}',
        ),
        (
            {"Hostname": "{{.Node.Hostnme}}"},
            f"expanding hostname failed: {FIELD_ERROR}",
        ),
        (
            {"Mounts": [{"Type": "bind", "Source": "/{{.Task.Slot", "Target": "/x"}]},
            'expanding mounts failed: expanding mount source "/{{.Task.Slot": template:'
            " expansion:1: unclosed action",
        ),
        (
            {"Mounts": [{"Type": "bind", "Source": "/x", "Target": "/{{nope}}"}]},
            'expanding mounts failed: expanding mount target "/{{nope}}": template: expansion:1:'
            ' function "nope" not defined',
        ),
        (
            {
                "Mounts": [
                    {"Type": "volume", "Target": "/x", "VolumeOptions": {"Labels": {"k": "{{.X}}"}}}
                ]
            },
            'expanding mounts failed: expanding volume labels: expanding map entry "k"="{{.X}}":'
            ' template: expansion:1:2: executing "expansion" at <.X>: can\'t evaluate field X in'
            " type *template.Context",
        ),
        (
            {
                "Mounts": [
                    {
                        "Type": "volume",
                        "Target": "/x",
                        "VolumeOptions": {"DriverConfig": {"Name": "l", "Options": {"o": "{{"}}},
                    }
                ]
            },
            "expanding mounts failed: expanding volume driver config: expanding map entry"
            ' "o"="{{": template: expansion:1: unclosed action',
        ),
    ],
)
def test_a_bad_template_fails_with_swarmkits_wrapped_error(container, message):
    with pytest.raises(TemplateError) as failure:
        expand_container_spec(NODE, task(**container))
    assert failure.value.message == message


def test_validation_expands_for_swarmkits_dummy_node_and_task():
    # Valid for the dummy: passes.
    validate_container_spec(
        TaskSpec(
            container_spec=ContainerSpec(
                image="busybox",
                env=["A={{.Node.Hostname}}{{.Task.Name}}{{.Service.Name}}{{.Node.Platform.OS}}"],
            )
        )
    )
    # The dummy service has no labels: a label read as a field is refused at create, as in
    # Swarm (index gives the zero value instead).
    with pytest.raises(TemplateError, match='map has no entry for key "tier"'):
        validate_container_spec(
            TaskSpec(container_spec=ContainerSpec(image="b", hostname="{{.Service.Labels.tier}}"))
        )
    validate_container_spec(
        TaskSpec(
            container_spec=ContainerSpec(image="b", hostname='{{index .Service.Labels "tier"}}')
        )
    )


# -- payloads -------------------------------------------------------------------------------

SECRETS = {"sid-db": b"hunter2", "sid-tpl": b"{{.Task.Name}}"}
CONFIGS = {"cid-app": b"port=80"}


def payload_task() -> Task:
    base = task(Env=["MODE={{.Task.Slot}}-mode", "PLAIN=p"])
    expanded = expand_task(NODE, base)
    container = expanded.spec.container_spec.replace(
        secrets=[
            SecretReference(secret_id="sid-db", secret_name="db", file=FileTarget(name="db")),
            SecretReference(secret_id="sid-gone", secret_name="gone", file=FileTarget(name="gone")),
        ],
        configs=[
            ConfigReference(config_id="cid-app", config_name="app", file=FileTarget(name="/app"))
        ],
    )
    return expanded.replace(spec=expanded.spec.replace(container_spec=container))


def payloads() -> Payloads:
    return Payloads(secrets=SECRETS.get, configs=CONFIGS.get)


def test_a_payload_reads_the_task_its_secrets_configs_and_env():
    seen = payloads()
    text = (
        b"{{.Service.Name}} {{.Task.Slot}} {{.Task.Name}} node={{.Node.ID}}"
        b' host=[{{.Node.Hostname}}] pw={{secret "db"}} cfg={{config "/app"}}'
        b' mode={{env "MODE"}} none=[{{env "NONE"}}]'
    )
    assert expand_payload(text, "golang", payload_task(), seen) == (
        b"web 2 web.2.task1 node=node1 host=[] pw=hunter2 cfg=port=80 mode=2-mode none=[]"
    )
    assert seen.sensitive  # it read a secret


def test_a_payload_without_secrets_is_not_sensitive_and_bytes_pass_through():
    seen = payloads()
    assert expand_payload(b"\xff{{.Task.Slot}}\xfe", "golang", payload_task(), seen) == (
        b"\xff2\xfe"
    )
    assert not seen.sensitive


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            b'{{secret "nope"}}',
            'template: expansion:1:2: executing "expansion" at <secret "nope">: error calling'
            " secret: secret target nope not found",
        ),
        (
            b'{{config "app"}}',
            'template: expansion:1:2: executing "expansion" at <config "app">: error calling'
            " config: config target app not found",
        ),
        (
            b'{{secret "gone"}}',
            'template: expansion:1:2: executing "expansion" at <secret "gone">: error calling'
            " secret: secret sid-gone not found",
        ),
        (
            b"{{.t}}",
            'template: expansion:1:2: executing "expansion" at <.t>: t is an unexported field of'
            " struct type *template.PayloadContext",
        ),
        (
            b"{{env}}",
            'template: expansion:1:2: executing "expansion" at <env>: wrong number of args for'
            " env: want 1 got 0",
        ),
    ],
)
def test_a_bad_payload_fails_with_swarmkits_words(text, message):
    with pytest.raises(TemplateError) as failure:
        expand_payload(text, "golang", payload_task(), payloads())
    assert failure.value.message == message


def test_a_template_driver_other_than_golang_is_unrecognized():
    with pytest.raises(TemplateError, match=r"^unrecognized template type$"):
        expand_payload(b"x", "mustache", payload_task(), payloads())
