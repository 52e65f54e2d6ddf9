"""Go ``text/template``'s lexer and parser, for what SwarmKit's templates use (pure).

``parse(name, text, functions)`` returns the template's tree or raises ``TemplateError`` with
Go's words (``template: expansion:1: function "foo" not defined``). It follows Go's
``text/template/parse`` (lex.go, parse.go, node.go): the same tokens, the same grammar (text,
comments, actions with pipelines, variables, parenthesized pipelines, ``if``/``else if``/
``else``/``end``, ``range`` with ``break``/``continue``, ``with``/``else with``, trim markers
``{{- `` and `` -}}``) and the same node positions and strings, which execution errors quote.
``define``, ``template`` and ``block`` (named templates) are not supported: SwarmKit's
templates are single strings; they are refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmlet.errors import InvalidSpec
from swarmlet.template.lex import Item, T, go_quote, lex


class TemplateError(InvalidSpec):
    """A template that does not parse or execute, in Go's words."""


# -- the nodes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    pos: int

    def __str__(self) -> str:  # pragma: no cover - every node has its own
        raise NotImplementedError


@dataclass(frozen=True)
class TextNode(Node):
    text: str

    def __str__(self) -> str:
        return go_quote(self.text)


@dataclass(frozen=True)
class DotNode(Node):
    def __str__(self) -> str:
        return "."


@dataclass(frozen=True)
class NilNode(Node):
    def __str__(self) -> str:
        return "nil"


@dataclass(frozen=True)
class BoolNode(Node):
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(frozen=True)
class NumberNode(Node):
    value: int | float
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class StringNode(Node):
    quoted: str
    text: str

    def __str__(self) -> str:
        return self.quoted


@dataclass(frozen=True)
class FieldNode(Node):
    ident: tuple[str, ...]

    def __str__(self) -> str:
        return "".join(f".{name}" for name in self.ident)


@dataclass(frozen=True)
class VariableNode(Node):
    ident: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.ident)


@dataclass(frozen=True)
class IdentifierNode(Node):
    ident: str

    def __str__(self) -> str:
        return self.ident


@dataclass(frozen=True)
class ChainNode(Node):
    node: Node
    fields: tuple[str, ...]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return inner + "".join(f".{name}" for name in self.fields)


@dataclass(frozen=True)
class CommandNode(Node):
    args: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join(f"({arg})" if isinstance(arg, PipeNode) else str(arg) for arg in self.args)


@dataclass(frozen=True)
class PipeNode(Node):
    line: int
    is_assign: bool = False
    decl: list[VariableNode] = field(default_factory=list)
    cmds: list[CommandNode] = field(default_factory=list)

    def __str__(self) -> str:
        text = ""
        if self.decl:
            text = ", ".join(str(var) for var in self.decl) + (" = " if self.is_assign else " := ")
        return text + " | ".join(str(cmd) for cmd in self.cmds)


@dataclass(frozen=True)
class ListNode(Node):
    nodes: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return "".join(str(node) for node in self.nodes)


@dataclass(frozen=True)
class ActionNode(Node):
    pipe: PipeNode

    def __str__(self) -> str:
        return f"{{{{{self.pipe}}}}}"


@dataclass(frozen=True)
class BranchNode(Node):
    """``if``, ``range`` and ``with``."""

    keyword: str
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None

    def __str__(self) -> str:
        text = f"{{{{{self.keyword} {self.pipe}}}}}{self.list}"
        if self.else_list is not None:
            text += f"{{{{else}}}}{self.else_list}"
        return text + "{{end}}"


@dataclass(frozen=True)
class BreakNode(Node):
    def __str__(self) -> str:
        return "{{break}}"


@dataclass(frozen=True)
class ContinueNode(Node):
    def __str__(self) -> str:
        return "{{continue}}"


@dataclass(frozen=True)
class _EndNode(Node):
    def __str__(self) -> str:
        return "{{end}}"


@dataclass(frozen=True)
class _ElseNode(Node):
    def __str__(self) -> str:
        return "{{else}}"


# -- the parser -----------------------------------------------------------------------------


def _unquote(item: Item) -> str:
    """Go's strconv.Unquote of a string token."""
    if item.typ == T.RAW_STRING:
        return item.val[1:-1]
    body = item.val[1:-1]
    try:
        return body.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as exc:
        raise ValueError("invalid syntax") from exc


class _Parser:
    def __init__(self, name: str, text: str, functions: frozenset[str]) -> None:
        self.name = name
        self.items = lex(text)
        self.index = 0
        self.current = self.items[0]
        self.functions = functions
        self.vars = ["$"]
        self.range_depth = 0
        self.action_line = 0

    def errorf(self, message: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{self.current.line}: {message}")

    def next(self) -> Item:
        item = self.items[min(self.index, len(self.items) - 1)]
        self.index += 1
        self.current = item
        return item

    def backup(self, count: int = 1) -> None:
        self.index -= count

    def peek(self) -> Item:
        return self.items[min(self.index, len(self.items) - 1)]

    def next_non_space(self) -> Item:
        item = self.next()
        while item.typ == T.SPACE:
            item = self.next()
        return item

    def peek_non_space(self) -> Item:
        item = self.next_non_space()
        self.backup()
        return item

    def expect(self, typ: T, context: str) -> Item:
        item = self.next_non_space()
        if item.typ != typ:
            raise self.unexpected(item, context)
        return item

    def unexpected(self, item: Item, context: str) -> TemplateError:
        if item.typ == T.ERROR:
            extra = ""
            if self.action_line and self.action_line != item.line:
                extra = f" in action started at {self.name}:{self.action_line}"
                if item.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            return self.errorf(f"{item}{extra}")
        return self.errorf(f"unexpected {item} in {context}")

    def parse(self) -> ListNode:
        root = ListNode(self.peek().pos)
        while self.peek().typ != T.EOF:
            node = self.text_or_action()
            if isinstance(node, _EndNode | _ElseNode):
                raise self.errorf(f"unexpected {node}")
            root.nodes.append(node)
        return root

    def item_list(self) -> tuple[ListNode, Node]:
        nodes = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != T.EOF:
            node = self.text_or_action()
            if isinstance(node, _EndNode | _ElseNode):
                return nodes, node
            nodes.nodes.append(node)
        raise self.errorf("unexpected EOF")

    def text_or_action(self) -> Node:
        item = self.next_non_space()
        if item.typ == T.TEXT:
            return TextNode(item.pos, item.val)
        if item.typ == T.LEFT_DELIM:
            self.action_line = item.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        raise self.unexpected(item, "input")

    def action(self) -> Node:
        item = self.next_non_space()
        match item.typ:
            case T.BREAK | T.CONTINUE:
                return self.loop_control(item)
            case T.ELSE:
                return self.else_control()
            case T.END:
                return _EndNode(self.expect(T.RIGHT_DELIM, "end").pos)
            case T.IF | T.RANGE | T.WITH:
                return self.branch(item.val)
            case T.BLOCK | T.DEFINE | T.TEMPLATE:
                raise self.errorf(f"{{{{{item.val}}}}} is not supported in Swarm's templates")
        self.backup()
        token = self.peek()
        return ActionNode(token.pos, self.pipeline("command", T.RIGHT_DELIM))

    def loop_control(self, item: Item) -> Node:
        word = item.val
        token = self.next_non_space()
        if token.typ != T.RIGHT_DELIM:
            raise self.unexpected(token, f"{{{{{word}}}}}")
        if self.range_depth == 0:
            raise self.errorf(f"{{{{{word}}}}} outside {{{{range}}}}")
        return BreakNode(item.pos) if word == "break" else ContinueNode(item.pos)

    def else_control(self) -> Node:
        peek = self.peek_non_space()
        if peek.typ in (T.IF, T.WITH):
            return _ElseNode(peek.pos)
        return _ElseNode(self.expect(T.RIGHT_DELIM, "else").pos)

    def branch(self, keyword: str) -> BranchNode:
        marked = len(self.vars)
        try:
            pipe = self.pipeline(keyword, T.RIGHT_DELIM)
            if keyword == "range":
                self.range_depth += 1
            body, end = self.item_list()
            if keyword == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(end, _ElseNode):
                follows = self.peek()
                chained = T.IF if keyword == "if" else T.WITH
                if keyword in ("if", "with") and follows.typ == chained:
                    self.next()
                    else_list = ListNode(end.pos, [self.branch(keyword)])
                else:
                    else_list, end = self.item_list()
                    if not isinstance(end, _EndNode):
                        raise self.errorf(f"expected end; found {end}")
            return BranchNode(pipe.pos, keyword, pipe, body, else_list)
        finally:
            del self.vars[marked:]

    def pipeline(self, context: str, end: T) -> PipeNode:
        token = self.peek_non_space()
        pipe = PipeNode(token.pos, token.line)
        while True:
            var = self.peek_non_space()
            if var.typ != T.VARIABLE:
                break
            self.next_non_space()
            after = self.peek()
            follows = self.peek_non_space()
            if follows.typ in (T.ASSIGN, T.DECLARE):
                self.next_non_space()
                pipe = PipeNode(pipe.pos, pipe.line, follows.typ == T.ASSIGN, pipe.decl, pipe.cmds)
                pipe.decl.append(VariableNode(var.pos, tuple(var.val.split("."))))
                self.vars.append(var.val)
                break
            if follows.typ == T.CHAR and follows.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(var.pos, tuple(var.val.split("."))))
                self.vars.append(var.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (T.VARIABLE, T.RIGHT_DELIM, T.RIGHT_PAREN):
                        continue
                    raise self.errorf("range can only initialize variables")
                raise self.errorf(f"too many declarations in {context}")
            # Not a declaration: push the variable (and a space after it) back.
            self.backup(2 if after.typ == T.SPACE else 1)
            break
        while True:
            item = self.next_non_space()
            if item.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if item.typ in (
                T.BOOL, T.CHAR_CONSTANT, T.DOT, T.FIELD, T.IDENTIFIER, T.NUMBER, T.NIL,
                T.RAW_STRING, T.STRING, T.VARIABLE, T.LEFT_PAREN,
            ):  # fmt: skip
                self.backup()
                pipe.cmds.append(self.command())
            else:
                raise self.unexpected(item, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            raise self.errorf(f"missing value for {context}")
        for index, cmd in enumerate(pipe.cmds[1:]):
            if isinstance(cmd.args[0], BoolNode | DotNode | NilNode | NumberNode | StringNode):
                raise self.errorf(f"non executable command in pipeline stage {index + 2}")

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            item = self.next()
            if item.typ == T.SPACE:
                continue
            if item.typ in (T.RIGHT_DELIM, T.RIGHT_PAREN):
                self.backup()
            elif item.typ != T.PIPE:
                raise self.unexpected(item, "operand")
            break
        if not cmd.args:
            raise self.errorf("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == T.FIELD:
            chain_pos = self.peek().pos
            fields: list[str] = []
            while self.peek().typ == T.FIELD:
                fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(chain_pos, (*node.ident, *fields))
            if isinstance(node, VariableNode):
                return VariableNode(chain_pos, (*node.ident, *fields))
            if isinstance(node, BoolNode | StringNode | NumberNode | NilNode | DotNode):
                raise self.errorf(f"unexpected . after term {go_quote(str(node))}")
            return ChainNode(chain_pos, node, tuple(fields))
        return node

    def term(self) -> Node | None:
        item = self.next_non_space()
        match item.typ:
            case T.IDENTIFIER:
                if item.val not in self.functions:
                    raise self.errorf(f"function {go_quote(item.val)} not defined")
                return IdentifierNode(item.pos, item.val)
            case T.DOT:
                return DotNode(item.pos)
            case T.NIL:
                return NilNode(item.pos)
            case T.VARIABLE:
                name = item.val.split(".")[0]
                if name not in self.vars:
                    raise self.errorf(f"undefined variable {go_quote(name)}")
                return VariableNode(item.pos, tuple(item.val.split(".")))
            case T.FIELD:
                return FieldNode(item.pos, (item.val[1:],))
            case T.BOOL:
                return BoolNode(item.pos, item.val == "true")
            case T.NUMBER | T.CHAR_CONSTANT:
                return self.number(item)
            case T.LEFT_PAREN:
                return self.pipeline("parenthesized pipeline", T.RIGHT_PAREN)
            case T.STRING | T.RAW_STRING:
                try:
                    return StringNode(item.pos, item.val, _unquote(item))
                except ValueError:
                    raise self.errorf("invalid syntax") from None
        self.backup()
        return None

    def number(self, item: Item) -> NumberNode:
        text = item.val
        if item.typ == T.CHAR_CONSTANT:
            try:
                char = _unquote(Item(T.STRING, item.pos, '"' + text[1:-1] + '"', item.line))
            except ValueError:
                char = ""
            if len(char) != 1:
                raise self.errorf(f"malformed character constant: {text}")
            return NumberNode(item.pos, ord(char), text)
        try:
            return NumberNode(item.pos, int(text, 0), text)
        except ValueError:
            pass
        try:
            return NumberNode(item.pos, float(text), text)
        except ValueError:
            raise self.errorf(f"illegal number syntax: {go_quote(text)}") from None


def parse(name: str, text: str, functions: frozenset[str]) -> ListNode:
    """The tree of ``text``; raises TemplateError with Go's message when it does not parse."""
    return _Parser(name, text, functions).parse()


def position(text: str, node: Node) -> str:
    """Go's ErrorContext location of a node: ``line:column`` (the column counts bytes from 0
    on the first line, from the line's start on the next ones, as Go does)."""
    before = text[: node.pos]
    line = 1 + before.count("\n")
    newline = before.rfind("\n")
    column = len(before.encode()) if newline < 0 else len(before[newline + 1 :].encode())
    return f"{line}:{column}"
