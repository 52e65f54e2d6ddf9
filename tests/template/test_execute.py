"""Go's text/template, as SwarmKit runs it: a table of templates and what Go makes of them.

The expected texts and messages are Go's (text/template's exec.go, parse.go, lex.go, funcs.go
and fmt), on the context SwarmKit gives a task (``*template.Context``).
"""

from __future__ import annotations

import pytest

from swarmlet.models import NodeDescription, Platform, Task
from swarmlet.template import TemplateError, new_template
from swarmlet.template.expand import NAME, task_context

TASK = Task(
    id="tid",
    service_id="sid",
    service_name="web",
    service_labels={"a": "1", "b": "2"},
    slot=3,
    node_id="nid",
)
NODE = NodeDescription(hostname="h1", platform=Platform(architecture="x86_64", os="linux"))
CONTEXT = task_context(NODE, TASK)

NODE_TYPE = "struct { ID string; Hostname string; Platform template.Platform }"

RESULTS = [
    ("plain text", "plain text"),
    ("{{.Service.Name}}-{{.Task.Slot}}", "web-3"),
    ("{{.Service.ID}} {{.Node.ID}} {{.Task.ID}}", "sid nid tid"),
    ("{{.Task.Name}}", "web.3.tid"),
    ("{{.Node.Hostname}} {{.Node.Platform.OS}}/{{.Node.Platform.Architecture}}", "h1 linux/x86_64"),
    ('{{index .Service.Labels "a"}}', "1"),
    ('{{index .Service.Labels "missing"}}', ""),  # index gives the zero value
    ("{{.Service.Labels.b}}", "2"),
    ("{{.Service.Labels}}", "map[a:1 b:2]"),
    ("{{.Node.Platform}}", "{x86_64 linux}"),
    ("{{.Service}}", "{sid web map[a:1 b:2]}"),
    ('{{join "," .Service.Name .Node.ID "x"}}', "web,nid,x"),
    ('{{join "-"}}', ""),
    ('{{printf "%s.%d" .Service.Name 7}}', "web.7"),
    ('{{printf "%v|%q|%5s|%-4d|%03d" .Task.Slot "a" "b" 1 2}}', '3|"a"|    b|1   |002'),
    ('{{printf "%d" .Service.Name}}', "%!d(string=web)"),
    ('{{printf "%s %s" "a"}}', "a %!s(MISSING)"),
    ('{{printf "%s" "a" 1}}', "a%!(EXTRA int=1)"),
    ('{{printf "100%%"}}', "100%"),
    ('{{.Service.Name | printf "<%s>"}}', "<web>"),
    ('{{"x" | printf "%s-%s" "y"}}', "y-x"),
    ('{{print 1 2 "a" 3 true}}', "1 2a3 true"),
    ("{{println .Task.Slot}}", "3\n"),
    ("{{len .Service.Labels}} {{len .Service.Name}}", "2 3"),
    ('{{if eq .Task.Slot "3"}}three{{else}}other{{end}}', "three"),
    ('{{if ne .Task.Slot "3"}}a{{else if eq .Node.ID "nid"}}b{{else}}c{{end}}', "b"),
    ('{{if eq .Task.Slot "1" "2" "3"}}one of{{end}}', "one of"),
    ("{{if not .Node.ID}}no{{else}}yes{{end}}", "yes"),
    ('{{and .Service.Name .Node.ID}} {{and "" .Node.ID}}|', "nid |"),
    ('{{or "" .Node.ID}} {{or .Service.Name .Node.ID}}', "nid web"),
    ("{{if .Service.Labels}}labelled{{end}}", "labelled"),
    ('{{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge "b" "a"}}', "true true false true"),
    ("{{range $k, $v := .Service.Labels}}{{$k}}={{$v}};{{end}}", "a=1;b=2;"),
    ("{{range .Service.Labels}}[{{.}}]{{end}}", "[1][2]"),
    ('{{range $v := .Service.Labels}}{{if eq $v "1"}}{{continue}}{{end}}{{$v}}{{end}}', "2"),
    ("{{range .Service.Labels}}{{.}}{{break}}{{end}}", "1"),
    ("{{range 3}}{{.}}{{end}}", "012"),
    ("{{range .Task.ID}}{{else}}never{{end}}", None),  # error, see ERRORS
    ("{{with .Node.Platform}}{{.OS}}{{end}}", "linux"),
    ('{{with ""}}x{{else with .Node.ID}}{{.}}{{end}}', "nid"),
    ('{{$x := "v"}}{{$x}}{{$x = "w"}}{{$x}}', "vw"),
    ("{{$.Service.Name}}", "web"),
    ("{{(.Node.Platform).OS}}", "linux"),
    ('{{(printf "%s" "a") | printf "%s%s" "b"}}', "ba"),
    ("a  {{- .Node.ID -}}  b", "anidb"),
    ("{{ .Node.ID -}}\n\n  b {{-3}}", "nidb -3"),  # "{{-3": no trim marker, a number
    ("a {{- /* a comment */ -}} b", "ab"),
    ("{{/* nothing */}}", ""),
    ("{{`raw {{x}}`}}", "raw {{x}}"),
    ('{{"tab\\tnew\\nline"}}', "tab\tnew\nline"),
    ("{{1}} {{1.5}} {{1000000.0}} {{0x10}} {{true}}", "1 1.5 1e+06 16 true"),
    ("{{html \"<a href='x'>\"}}", "&lt;a href=&#39;x&#39;&gt;"),
    ('{{urlquery "a b&c"}}', "a+b%26c"),
    ('{{slice "abcdef" 1 3}}', "bc"),
    ("{{.}}", "&{{sid web map[a:1 b:2]} {nid h1 {x86_64 linux}} {tid web.3.tid 3}}"),
]


@pytest.mark.parametrize(("text", "expected"), [r for r in RESULTS if r[1] is not None])
def test_a_template_gives_what_go_gives(text, expected):
    assert new_template(NAME, text).execute(CONTEXT) == expected


ERRORS = [
    # Parse errors: template: NAME:LINE: ...
    ("{{.Service.Name", "template: expansion:1: unclosed action"),
    ("{{.Service.Name}", "template: expansion:1: bad character U+007D '}'"),
    ("{{nosuch .Service.Name}}", 'template: expansion:1: function "nosuch" not defined'),
    ("{{end}}", "template: expansion:1: unexpected {{end}}"),
    ("{{if .Node.ID}}x", "template: expansion:1: unexpected EOF"),
    ("{{}}", "template: expansion:1: missing value for command"),
    ('{{"abc}}', "template: expansion:1: unterminated quoted string"),
    ("{{$x}}", 'template: expansion:1: undefined variable "$x"'),
    ("{{.A | 3}}", "template: expansion:1: non executable command in pipeline stage 2"),
    ("{{break}}", "template: expansion:1: {{break}} outside {{range}}"),
    ("{{(.A}}", "template: expansion:1: unclosed left paren"),
    ("{{.A)}}", "template: expansion:1: unexpected right paren"),
    ("{{ .A ! }}", 'template: expansion:1: unexpected "!" in operand'),
    ("{{/* unclosed", "template: expansion:1: unclosed comment"),
    ("line one\nline two {{.Node.ID", "template: expansion:2: unclosed action"),
    ("{{.Node.ID\n\n", "template: expansion:3: unclosed action started at expansion:1"),
    ("a\n{{if .Node.ID}}\nx", "template: expansion:3: unexpected EOF"),
    # Execution errors: template: NAME:LINE:COL: executing "NAME" at <NODE>: ...
    (
        "{{.Node.Hostnme}}",
        'template: expansion:1:7: executing "expansion" at <.Node.Hostnme>: can\'t evaluate'
        f" field Hostnme in type {NODE_TYPE}",
    ),
    (
        "{{.Nodes}}",
        'template: expansion:1:2: executing "expansion" at <.Nodes>: can\'t evaluate field'
        " Nodes in type *template.Context",
    ),
    (
        "x\n  {{.Service.Labels.c}}",
        'template: expansion:2:12: executing "expansion" at <.Service.Labels.c>: map has no'
        ' entry for key "c"',
    ),
    (
        "{{.Node.Platform.OS.X}}",
        'template: expansion:1:7: executing "expansion" at <.Node.Platform.OS.X>: can\'t'
        " evaluate field X in type string",
    ),
    (
        '{{join "," .Service.Labels}}',
        'template: expansion:1:19: executing "expansion" at <.Service.Labels>: wrong type for'
        " value; expected string; got map[string]string",
    ),
    (
        "{{join 1}}",
        'template: expansion:1:7: executing "expansion" at <1>: expected string; found 1',
    ),
    (
        "{{join}}",
        'template: expansion:1:2: executing "expansion" at <join>: error calling join: runtime'
        " error: slice bounds out of range [1:0]",
    ),
    (
        "{{eq .Task.Slot 3}}",
        'template: expansion:1:2: executing "expansion" at <eq .Task.Slot 3>: error calling eq:'
        " incompatible types for comparison",
    ),
    (
        "{{index .Service.Labels 1}}",
        'template: expansion:1:2: executing "expansion" at <index .Service.Labels 1>: error'
        " calling index: value has type int; should be string",
    ),
    (
        "{{len 3}}",
        'template: expansion:1:2: executing "expansion" at <len 3>: error calling len: len of'
        " type int",
    ),
    (
        '{{ne "a"}}',
        'template: expansion:1:2: executing "expansion" at <ne>: wrong number of args for ne:'
        " want 2 got 1",
    ),
    (
        '{{.Service.Name "x"}}',
        'template: expansion:1:10: executing "expansion" at <.Service.Name>: Name has arguments'
        " but cannot be invoked as function",
    ),
    (
        '{{.Service.Labels.a "x"}}',
        'template: expansion:1:10: executing "expansion" at <.Service.Labels.a>: a is not a'
        " method but has arguments",
    ),
    (
        '{{"a" "b"}}',
        'template: expansion:1:2: executing "expansion" at <"a">: can\'t give argument to'
        ' non-function "a"',
    ),
    (
        "{{nil}}",
        'template: expansion:1:2: executing "expansion" at <nil>: nil is not a command',
    ),
    (
        "{{range .Task.ID}}{{end}}",
        'template: expansion:1:13: executing "expansion" at <.Task.ID>: range can\'t iterate'
        " over tid",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_a_bad_template_fails_with_gos_words(text, message):
    with pytest.raises(TemplateError) as failure:
        new_template(NAME, text).execute(CONTEXT)
    assert failure.value.message == message
