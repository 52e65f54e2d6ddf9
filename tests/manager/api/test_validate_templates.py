"""Templates are checked at create and update as SwarmKit's controlapi checks them: expanded for
a dummy node and task, a bad one refused with SwarmKit's message (a 400), nothing made."""

from __future__ import annotations

import pytest

from swarmlet.models import Service

IMAGE = "swarmlet-test/busybox:latest"
CREATE = ["service", "create", "-d", "--no-resolve-image", "--name", "tpl"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--hostname", "{{.Service.Name"],
            "expanding hostname failed: template: expansion:1: unclosed action",
        ),
        (
            ["--env", "WHERE={{.Node.Hostnam}}"],
            'expanding env failed: expanding env "WHERE={{.Node.Hostnam}}": template:'
            ' expansion:1:7: executing "expansion" at <.Node.Hostnam>: can\'t evaluate field'
            " Hostnam in type struct { ID string; Hostname string; Platform template.Platform }",
        ),
        (
            ["--mount", "type=volume,source=v-{{nope}},target=/data"],
            'expanding mounts failed: expanding mount source "v-{{nope}}": template:'
            ' expansion:1: function "nope" not defined',
        ),
        (
            # The dummy service has no labels: refused, as by Swarm.
            ["--label", "tier=front", "--hostname", "{{.Service.Labels.tier}}"],
            'expanding hostname failed: template: expansion:1:10: executing "expansion" at'
            ' <.Service.Labels.tier>: map has no entry for key "tier"',
        ),
    ],
)
async def test_a_bad_template_is_refused_at_create(docker, served, store, flags, message):
    code, _, err = await docker(served, *CREATE, *flags, IMAGE, "sleep", "1000")
    assert code != 0
    assert err == f"Error response from daemon: {message}\n"
    assert store.all(Service) == []


async def test_good_templates_are_kept_as_given(docker, served, store):
    code, out, err = await docker(
        served, *CREATE, "--hostname", "{{.Service.Name}}-{{.Task.Slot}}",
        "--env", "WHERE={{.Node.Hostname}}", "--env", 'T={{index .Service.Labels "tier"}}',
        "--mount", "type=volume,source=data-{{.Task.Slot}},target=/data",
        IMAGE, "sleep", "1000",
    )  # fmt: skip
    assert code == 0, err
    assert err == ""  # no warning: templates are expanded on the task's node
    container = store.get(Service, out.strip()).spec.task_template.container_spec
    assert container.hostname == "{{.Service.Name}}-{{.Task.Slot}}"
    assert container.env == ["WHERE={{.Node.Hostname}}", 'T={{index .Service.Labels "tier"}}']


async def test_a_bad_template_is_refused_at_update_and_changes_nothing(docker, served, store):
    code, out, err = await docker(served, *CREATE, IMAGE, "sleep", "1000")
    assert code == 0, err
    before = store.get(Service, out.strip())
    code, _, err = await docker(served, "service", "update", "-d", "--env-add", "A={{", "tpl")
    assert code != 0
    assert err == (
        'Error response from daemon: expanding env failed: expanding env "A={{": template:'
        " expansion:1: unclosed action\n"
    )
    assert store.get(Service, before.id) == before
