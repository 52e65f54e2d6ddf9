"""Go ``text/template``'s execution, with ``missingkey=error``, over a few Go-like values (pure).

Values are Python's: ``str``, ``int``, ``float``, ``bool``, a ``dict`` (a Go
``map[string]string``), a ``list`` (``[]string``), ``None`` (Go's invalid value: nothing) and
``GoStruct`` (a struct, with its Go type's name for error messages). Execution follows Go's
exec.go: the same truth, the same field and map lookups, the same function calls (arguments
typed as Go's functions type them), the same output (``fmt.Fprint``) and the same errors,
``template: expansion:1:7: executing "expansion" at <.Node.Hostnme>: can't evaluate field
Hostnme in type struct { ID string; Hostname string; Platform template.Platform }``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from swarmlet.template import funcs
from swarmlet.template.funcs import CallError, Func
from swarmlet.template.parse import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    TemplateError,
    TextNode,
    VariableNode,
    parse,
    position,
)
from swarmlet.template.values import GoStruct, go_quote, go_type, is_true, sprint_value

# The value of a pipeline's previous command when there is none (Go's missingVal).
MISSING: Any = object()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


@dataclass(frozen=True)
class Template:
    """A parsed template and the functions it may call (Go's builtins and ``extra``)."""

    name: str
    text: str
    root: ListNode
    functions: Mapping[str, Func]

    def execute(self, data: Any) -> str:
        state = _State(self, data)
        state.walk(data, self.root)
        return "".join(state.out)


def new_template(name: str, text: str, extra: Mapping[str, Func] | None = None) -> Template:
    """Parse ``text`` (Go's ``template.New(name).Option("missingkey=error").Funcs(...).Parse``)."""
    functions = {**funcs.BUILTINS, **(extra or {})}
    root = parse(name, text, frozenset(functions))
    return Template(name, text, root, functions)


class _State:
    def __init__(self, template: Template, data: Any) -> None:
        self.template = template
        self.vars: list[tuple[str, Any]] = [("$", data)]
        self.node: Node | None = None
        self.out: list[str] = []

    # -- errors and variables ----------------------------------------------------------------

    def at(self, node: Node) -> None:
        self.node = node

    def errorf(self, message: str) -> TemplateError:
        name = self.template.name
        if self.node is None:
            return TemplateError(f"template: {name}: {message}")
        where = position(self.template.text, self.node)
        return TemplateError(
            f'template: {name}:{where}: executing "{name}" at <{self.node}>: {message}'
        )

    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def set_var(self, name: str, value: Any) -> None:
        for index in range(len(self.vars) - 1, -1, -1):
            if self.vars[index][0] == name:
                self.vars[index] = (name, value)
                return
        raise self.errorf(f"undefined variable: {name}")

    def set_top_var(self, n: int, value: Any) -> None:
        name = self.vars[-n][0]
        self.vars[-n] = (name, value)

    def var_value(self, name: str) -> Any:
        for var, value in reversed(self.vars):
            if var == name:
                return value
        raise self.errorf(f"undefined variable: {name}")

    # -- walking the tree --------------------------------------------------------------------

    def walk(self, dot: Any, node: Node) -> None:
        self.at(node)
        if isinstance(node, ActionNode):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.at(node)
                self.out.append("<no value>" if value is None else sprint_value(value))
        elif isinstance(node, ListNode):
            for item in node.nodes:
                self.walk(dot, item)
        elif isinstance(node, TextNode):
            self.out.append(node.text)
        elif isinstance(node, BranchNode):
            if node.keyword == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        else:  # pragma: no cover - the parser makes no other node
            raise self.errorf(f"unknown node: {node}")

    def walk_if_or_with(self, dot: Any, node: BranchNode) -> None:
        mark = self.mark()
        try:
            value = self.eval_pipeline(dot, node.pipe)
            truth = is_true(value)
            if truth is None:
                raise self.errorf(f"if/with can't use {sprint_value(value)}")
            if truth:
                self.walk(value if node.keyword == "with" else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)

    def walk_range(self, dot: Any, node: BranchNode) -> None:
        self.at(node)
        mark = self.mark()
        try:
            value = self.eval_pipeline(dot, node.pipe)
            mark_inner = self.mark()
            count = 0
            for index, element in self._elements(value):
                count += 1
                self._set_range_vars(node.pipe, index, element)
                try:
                    self.walk(element, node.list)
                except _Continue:
                    pass
                except _Break:
                    break
                finally:
                    self.pop(mark_inner)
            if count == 0 and node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)

    def _elements(self, value: Any) -> Iterator[tuple[Any, Any]]:
        if isinstance(value, dict):
            for key in sorted(value):
                yield key, value[key]
        elif isinstance(value, list):
            yield from enumerate(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            for number in range(value):
                yield number, number
        elif value is not None:
            raise self.errorf(f"range can't iterate over {sprint_value(value)}")

    def _set_range_vars(self, pipe: PipeNode, index: Any, element: Any) -> None:
        decl = pipe.decl
        if not decl:
            return
        if pipe.is_assign:
            if len(decl) > 1:
                self.set_var(decl[0].ident[0], index)
                self.set_var(decl[1].ident[0], element)
            else:
                self.set_var(decl[0].ident[0], element)
            return
        self.set_top_var(1, element)
        if len(decl) > 1:
            self.set_top_var(2, index)

    # -- evaluation --------------------------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        self.at(pipe)
        value = MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.vars.append((var.ident[0], value))
        return value

    def not_a_function(self, args: list[Node], final: Any) -> None:
        if len(args) > 1 or final is not MISSING:
            raise self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self.eval_field_node(dot, first, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return first.value
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            raise self.errorf("nil is not a command")
        if isinstance(first, NumberNode):
            return first.value
        if isinstance(first, StringNode):
            return first.text
        raise self.errorf(f"can't evaluate command {first}")  # pragma: no cover

    def eval_field_node(self, dot: Any, node: FieldNode, args: list[Node], final: Any) -> Any:
        self.at(node)
        return self.eval_field_chain(dot, node, node.ident, args, final)

    def eval_chain_node(
        self, dot: Any, chain: ChainNode, args: list[Node] | None, final: Any
    ) -> Any:
        self.at(chain)
        if isinstance(chain.node, NilNode):
            raise self.errorf(f"indirection through explicit nil in {chain}")
        receiver = self.eval_arg(dot, funcs.ANY, chain.node)
        return self.eval_field_chain(receiver, chain, chain.fields, args, final)

    def eval_variable_node(
        self, dot: Any, var: VariableNode, args: list[Node] | None, final: Any
    ) -> Any:
        self.at(var)
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args or [var], final)
            return value
        return self.eval_field_chain(value, var, var.ident[1:], args, final)

    def eval_field_chain(
        self,
        receiver: Any,
        node: Node,
        ident: tuple[str, ...],
        args: list[Node] | None,
        final: Any,
    ) -> Any:
        for name in ident[:-1]:
            receiver = self.eval_field(name, None, MISSING, receiver)
        return self.eval_field(ident[-1], args, final, receiver)

    def eval_field(self, name: str, args: list[Node] | None, final: Any, receiver: Any) -> Any:
        if receiver is None:
            raise self.errorf(f"nil data; no entry for key {go_quote(name)}")
        has_args = (args is not None and len(args) > 1) or final is not MISSING
        if isinstance(receiver, GoStruct):
            if name in receiver.unexported:
                raise self.errorf(
                    f"{name} is an unexported field of struct type {receiver.go_type}"
                )
            if name in receiver.fields:
                if has_args:
                    raise self.errorf(f"{name} has arguments but cannot be invoked as function")
                return receiver.fields[name]
        elif isinstance(receiver, dict):
            if has_args:
                raise self.errorf(f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            raise self.errorf(f"map has no entry for key {go_quote(name)}")
        raise self.errorf(f"can't evaluate field {name} in type {go_type(receiver)}")

    def eval_function(
        self, dot: Any, node: IdentifierNode, cmd: Node, args: list[Node] | None, final: Any
    ) -> Any:
        self.at(node)
        function = self.template.functions[node.ident]
        return self.eval_call(dot, function, cmd, node.ident, args, final)

    def eval_call(
        self,
        dot: Any,
        function: Func,
        node: Node,
        name: str,
        args: list[Node] | None,
        final: Any,
    ) -> Any:
        args = args[1:] if args is not None else []
        num_in = len(args) + (final is not MISSING)
        fixed = function.params
        if function.variadic is not None:
            if num_in < len(fixed):
                raise self.errorf(
                    f"wrong number of args for {name}: want at least {len(fixed)} got {len(args)}"
                )
        elif num_in != len(fixed):
            raise self.errorf(f"wrong number of args for {name}: want {len(fixed)} got {num_in}")
        if name in ("and", "or") and function is funcs.BUILTINS.get(name):
            value = None
            for arg in args:
                value = self.eval_arg(dot, funcs.VALUE, arg)
                if bool(is_true(value)) == (name == "or"):
                    return value
            return self.validate_type(final, funcs.VALUE) if final is not MISSING else value
        argv = [self.eval_arg(dot, kind, arg) for kind, arg in zip(fixed, args, strict=False)]
        if function.variadic is not None:
            argv += [self.eval_arg(dot, function.variadic, arg) for arg in args[len(fixed) :]]
        if final is not MISSING:
            if function.variadic is None:
                kind = fixed[-1]
            else:
                kind = fixed[num_in - 1] if num_in - 1 < len(fixed) else function.variadic
            argv.append(self.validate_type(final, kind))
        try:
            return function.call(*argv)
        except CallError as exc:
            self.at(node)
            raise self.errorf(f"error calling {name}: {exc}") from None

    def eval_arg(self, dot: Any, kind: str, node: Node) -> Any:
        self.at(node)
        evaluate: Callable[[], Any] | None = None
        if isinstance(node, DotNode):
            evaluate = lambda: dot  # noqa: E731
        elif isinstance(node, NilNode):
            if kind == funcs.ANY:
                return None
            raise self.errorf(f"cannot assign nil to {kind}")
        elif isinstance(node, FieldNode):
            evaluate = lambda: self.eval_field_node(dot, node, [node], MISSING)  # noqa: E731
        elif isinstance(node, VariableNode):
            evaluate = lambda: self.eval_variable_node(dot, node, None, MISSING)  # noqa: E731
        elif isinstance(node, PipeNode):
            evaluate = lambda: self.eval_pipeline(dot, node)  # noqa: E731
        elif isinstance(node, IdentifierNode):
            evaluate = lambda: self.eval_function(dot, node, node, None, MISSING)  # noqa: E731
        elif isinstance(node, ChainNode):
            evaluate = lambda: self.eval_chain_node(dot, node, None, MISSING)  # noqa: E731
        if evaluate is not None:
            return self.validate_type(evaluate(), kind)
        if kind == funcs.STRING:
            if isinstance(node, StringNode):
                return node.text
            raise self.errorf(f"expected string; found {node}")
        if isinstance(node, BoolNode | NumberNode):
            return node.value
        if isinstance(node, StringNode):
            return node.text
        raise self.errorf(f"can't handle {node} for arg of type {kind}")  # pragma: no cover

    def validate_type(self, value: Any, kind: str) -> Any:
        if value is None:
            if kind == funcs.ANY:
                return None
            raise self.errorf(f"invalid value; expected {kind}")
        if kind == funcs.STRING and not isinstance(value, str):
            raise self.errorf(f"wrong type for value; expected string; got {go_type(value)}")
        return value
