"""Long generated statements split the way ``ruff format`` (and black) split them.

Generated files are meant to be kept and edited, so they come out already formatted: a
statement longer than :data:`LINE_LENGTH` is split at its last bracket pair (skipping
trailing ``[0]``-like trailers whose split would leave the first line too long); the
bracket's contents go on one indented line if they fit, else one element per line with a
trailing comma, each element split the same way. A string literal too long for its line
(a module's name of more than 64 characters, written as a string) is written as ruff keeps
one that cannot be joined: its parts, one a line (``"first_part_"`` then ``"rest"``). Only the
shapes of statement archc writes are handled (assignments, calls, ``return``, ``def``); the
test suite checks every shipped spec's file with ``ruff format --check``.
"""
from __future__ import annotations

import ast
import functools
import re
from itertools import accumulate

from archc.pysource import literal

__all__ = ["LINE_LENGTH", "MAX_LINE", "concatenated_lists", "spaced_slices", "split_statement"]

#: ruff format's line length: what the formatting aims at
LINE_LENGTH = 88
#: the longest line a generated file may have (issue 13): what ruff cannot split (a long name
#: between brackets it has split already) may pass LINE_LENGTH, never this
MAX_LINE = 100
_COMMA_CLOSE = re.compile(r",\s*[)\]}]")
_OPEN, _CLOSE = "([{", ")]}"
_FOR = re.compile(r"\bfor\b")  # no comprehension without it (a cheap test before parsing)
_NAME_END = re.compile(r"[\w.]*\Z")  # (\w: what str.isalnum() takes, and "_")


_CODE_CHARS = re.compile(r"""[()\[\]{},]|'(?:[^'\\]|\\.)*(?:'|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z)""", re.S)


_BRACKETS_AND_COMMAS = re.compile(r"([()\[\]{},])")
_BRACKET_OR_QUOTE = re.compile(r"[()\[\]{}'\"]")


def _code_chars(text: str) -> list[tuple[int, str]]:
    """(index, character) of the brackets and commas of ``text`` outside string literals: the
    one quote-aware scan (a regular expression steps over strings whole)."""
    if "'" in text or '"' in text:
        return [(m.start(), c) for m in _CODE_CHARS.finditer(text) if len(c := m.group()) == 1 and c not in "'\""]
    # no strings (most statements): the text cut at each such character, its index the length before it
    parts = _BRACKETS_AND_COMMAS.split(text)  # text, a character, text, ...
    return list(zip(list(accumulate(map(len, parts)))[0::2], parts[1::2]))


@functools.lru_cache(maxsize=64)  # split_statement asks twice per text (the magic comma, the split)
def _pairs(text: str) -> dict[int, int]:
    """Closing bracket index -> its opening index, outside string literals."""
    stack, pairs = [], {}
    for i, c in _code_chars(text):
        if c in _OPEN:
            stack.append(i)
        elif c in _CLOSE and stack:
            pairs[i] = stack.pop()
    return pairs


def _top_level_commas(body: str) -> list[str]:
    """``body`` split at its top-level commas (a trailing comma leaves no empty element)."""
    if not _BRACKET_OR_QUOTE.search(body):  # every comma top-level (keyword arguments of ints): split in C
        parts = [part.strip() for part in body.split(",")]
        return parts if parts[-1] else parts[:-1]
    parts, depth, start = [], 0, 0
    for i, c in _code_chars(body):
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(body[start:i].strip())
            start = i + 1
    tail = body[start:].strip()
    if tail:
        parts.append(tail)
    return parts


_STARRED = re.compile(r"\*[A-Za-z_]\w*\Z")


def concatenated_lists(text: str) -> str:
    """``text`` with each list display holding a starred name written as a sum of lists:
    ``[x, *rest, y]`` as ``[x] + rest + [y]``, ``[*rest]`` as ``rest``. TorchScript cannot size
    a starred list display ("cannot statically infer the expected size of a list"); a sum of
    lists it types as ``List[Tensor]``, and torch.fx and torch.export trace it the same."""
    while "*" in text:
        for close, open_ in sorted(_pairs(text).items(), key=lambda item: -item[1]):
            if text[open_] != "[" or _is_call(text, open_):  # (a subscript, not a display)
                continue
            elements = _top_level_commas(text[open_ + 1:close])
            if not any(_STARRED.match(e) for e in elements):
                continue
            terms, run = [], []
            for element in elements:
                if _STARRED.match(element):
                    terms += [f"[{', '.join(run)}]"] if run else []
                    terms.append(element[1:])
                    run = []
                else:
                    run.append(element)
            terms += [f"[{', '.join(run)}]"] if run else []
            text = text[:open_] + " + ".join(terms) + text[close + 1:]
            break
        else:
            return text
    return text


_SIMPLE_BOUND = re.compile(r"-?(\d+|[A-Za-z_]\w*)")


def spaced_slices(text: str) -> str:
    """``text`` with the colons of each slice whose bounds are more than names and numbers spaced as
    a binary operator, on the sides that have a bound (``x[:, : self.half]``, ``x[a.b : 4 : 1]``), as
    ruff format writes them; simple slices (``x[:, 0:4:1]``) stay. Subscripts holding brackets or
    strings are left alone (archc writes no such slice)."""
    pairs = _pairs(text)
    out, last = [], 0
    for close, open_ in sorted(pairs.items(), key=lambda item: item[1]):
        body = text[open_ + 1:close]
        if text[open_] != "[" or ":" not in body or open_ < last or _BRACKET_OR_QUOTE.search(body):
            continue
        elements = [_spaced(element) for element in _top_level_commas(body)]
        out += [text[last:open_ + 1], ", ".join(elements)]
        last = close
    return "".join(out) + text[last:] if out else text


def _spaced(element: str) -> str:
    bounds = [bound.strip() for bound in element.split(":")]
    if len(bounds) == 1 or all(not b or _SIMPLE_BOUND.fullmatch(b) for b in bounds):
        return element
    text = bounds[0]
    for left, right in zip(bounds, bounds[1:]):
        text += (" :" if left else ":") + (f" {right}" if right else "")
    return text


def split_statement(text: str, indent: str) -> list[str]:
    """``text`` (one statement, without indent) as lines at ``indent``, split where too long."""
    if len(indent) + len(text) <= LINE_LENGTH and not _magic_comma(text):
        return [indent + text]
    return list(_split_long(text, indent))


# A pure function of its two strings, kept across calls (a model regenerated, a block class's
# statements written again for another model): a long statement is scanned for its brackets,
# commas and string literals, and re-split element by element, once.
@functools.lru_cache(maxsize=2048)
def _split_long(text: str, indent: str) -> tuple[str, ...]:
    parts = _string_lines(text, indent)
    if parts is not None:
        return parts
    pairs = _pairs(text)
    if text.startswith(("def ", "class ")):  # a def (class) splits at its parameters (bases): black's left-hand split
        first = min((o, c) for c, o in pairs.items())
        return tuple(_split_at(text, first[0], first[1], indent))
    chain = _operator_split(text, indent)
    if chain is not None:
        return chain
    whole = text.rstrip(",")  # (an element that is one bracket: a call's one argument `[... for _ in ...]`)
    if whole[:1] in _OPEN and pairs.get(len(whole) - 1) == 0 and len(whole) > 2:
        return tuple(_split_at(text, 0, len(whole) - 1, indent))
    # (empty brackets are never split: ruff leaves ``.detach().copy_(`` long rather than split ``()``)
    candidates = [close for close in _trailers(text, pairs) if pairs[close] != close - 1]
    own = None  # the split at the value's own brackets
    for close in candidates:
        if len(indent) + len(text[:pairs[close] + 1]) <= LINE_LENGTH or close == candidates[-1]:
            own = tuple(_split_at(text, pairs[close], close, indent))
            break
    return _assignment_split(text, indent, own) or own or (indent + text,)


# a string literal as pysource.literal writes one (ruff's quotes), at the start of a text
_STRING_HEAD = re.compile(r"'(?:[^'\\]|\\.)*'|" + r'"(?:[^"\\]|\\.)*"')
_CUT_AFTER = "_-. "  # where a long name is cut, where it can be


def _string_lines(text: str, indent: str) -> tuple[str, ...] | None:
    """``text`` that starts with a string literal too long for its line (with what follows it up
    to its first bracket: ``,``, ``]``, ``: nn.Conv1d(``) as that literal's parts one a line, as
    ruff leaves an implicit concatenation that would not fit joined, the rest after the last part
    and split as a statement; None where ``text`` starts otherwise or the literal fits."""
    found = _STRING_HEAD.match(text)
    if found is None:
        return None
    rest = text[found.end():]
    bracket = min((i for i in (rest.find(c) for c in _OPEN) if i >= 0), default=len(rest) - 1)
    after = len(rest[:bracket + 1])
    width = LINE_LENGTH - len(indent) - 2  # (a part's characters, between its quotes)
    if len(indent) + found.end() + after <= LINE_LENGTH or width - after < 8:
        return None
    value = ast.literal_eval(found.group())
    quote = found.group()[0]
    # each character as it is written between those quotes (a part may take the other quotes: never longer)
    sizes = [2 if c == quote else 1 if c in "'\"" else len(repr(c)) - 2 for c in value]
    parts: list[str] = []
    start, size = 0, sum(sizes)
    while size > width - after:  # (the last part leaves room for what follows it)
        room, taken, cut = min(width, size - 1), 0, 0
        for i in range(start, len(value)):
            if taken + sizes[i] > room:
                break
            taken += sizes[i]
            if value[i] in _CUT_AFTER:
                cut = i + 1
        cut = cut or i  # (no place to cut at in the line: cut where it is full)
        parts.append(literal(value[start:cut]))
        size -= sum(sizes[start:cut])
        start = cut
    return (*(indent + part for part in parts), *split_statement(literal(value[start:]) + rest, indent))


_KEYED_TARGET = re.compile(r"""(\w+)\[("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\] = (\[.*)\Z""")  # x["key"] = [..]
_TARGETS = r"[\w, .\[\]()]+"  # what the generator assigns to: names, attributes, subscripts, tuples of them
_ASSIGNMENT = re.compile(rf"({_TARGETS}) = (?=.)")  # targets = (a value follows)


def _assignment_split(text: str, indent: str, own: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """An assignment or ``return`` of a call, subscript, attribute or name too long for one line, as
    ruff formats it; None: as it stands (split at its own brackets, ``own``; None where it has none).
    Ruff splits an assigned value at its own brackets where that first line fits (``x = f(``); else
    puts it in parentheses on lines of its own (``x = (``, then ``f(a)`` one indent in) where ``x = (``
    fits and, for one target, every line of the value does; else, for several targets, splits those
    (one a line, in parentheses) and leaves the value after them. A returned value it parenthesises
    only where it has no brackets and then fits; a returned tuple of such goes one element a line."""
    if text.startswith("return "):
        return _return_split(text[len("return "):], indent)
    keyed = _KEYED_TARGET.match(text)
    if keyed and own is not None and len(own[0]) > LINE_LENGTH:
        # (block_instances' ``classes["a long block name"] = [...]``: ruff splits the key first)
        key = indent + "    " + keyed.group(2)
        return (indent + keyed.group(1) + "[", *(_string_lines(keyed.group(2), indent + "    ") or (key,)),
                *split_statement("] = " + keyed.group(3), indent))
    head = _ASSIGNMENT.match(text)
    if head is None or own is not None and len(own[0]) <= LINE_LENGTH:
        return None
    value = text[head.end():]
    targets = _top_level_commas(head.group(1))
    if not _is_trailer_chain(value):
        return None
    fits = len(indent) + len(head.group()) + 1 <= LINE_LENGTH
    body = split_statement(value, indent + "    ") if fits else []
    if fits and (len(targets) > 1 or max(map(len, body)) <= LINE_LENGTH):
        return (indent + head.group() + "(", *body, indent + ")")
    if len(targets) > 1:  # (a target that is itself a tuple, nn.LSTM's (h_n, c_n), split alike if too long)
        return (indent + "(", *[line for target in targets for line in split_statement(target + ",", indent + "    ")],
                *split_statement(") = " + value, indent))
    return None


def _return_split(value: str, indent: str) -> tuple[str, ...] | None:
    """``return value`` split as ruff splits it, where ``value`` is a name, an attribute or a tuple of
    those (what forward returns); None otherwise."""
    elements = _top_level_commas(value)
    if _BRACKET_OR_QUOTE.search(value) or not all(_NAME_END.fullmatch(e) for e in elements):
        return None
    inner = indent + "    "
    if len(elements) > 1:
        return (indent + "return (", *[inner + element + "," for element in elements], indent + ")")
    if len(inner) + len(value) <= LINE_LENGTH:
        return (indent + "return (", inner + value, indent + ")")
    return None


def _is_trailer_chain(expr: str) -> bool:
    """Whether ``expr`` is a name, or a call, subscript or attribute (those ruff parenthesises whole
    as an assignment's value; an operator chain or a display it splits otherwise)."""
    return isinstance(_expression(expr), (ast.Name, ast.Call, ast.Subscript, ast.Attribute))


def _expression(text: str) -> ast.expr | None:
    """``text`` parsed as one Python expression; None where it is none."""
    try:
        return ast.parse(text, mode="eval").body
    except SyntaxError:
        return None


# binary operators by how loosely they bind (ruff splits a chain at its loosest ones); ** binds
# tightest, split where it stands once (a reset's ``bound = ....numel() ** -0.5``) but left alone in
# a right-associative chain (``a ** b ** c``), which the generator never writes
_PRECEDENCE = {ast.BitOr: 0, ast.BitXor: 1, ast.BitAnd: 2, ast.LShift: 3, ast.RShift: 3, ast.Add: 4,
               ast.Sub: 4, ast.Mult: 5, ast.MatMult: 5, ast.Div: 5, ast.FloorDiv: 5, ast.Mod: 5,
               ast.Pow: 6}
_MAYBE_OPERATOR = re.compile(r"[-+*/@%|&^] ")  # (the generator spaces binary operators)
_HEADS = re.compile(rf"(return |{_TARGETS} = )(?=.)")  # what stands before a statement's expression


def _operator_split(text: str, indent: str) -> tuple[str, ...] | None:
    """``text`` split at the operators of a chain of binary operators, as ruff format splits it:
    a statement's expression (``targets = expr``, ``return expr``) in parentheses, on one indented
    line if it fits; a bracket's element (``a + b,``) as it stands; else one operand per line, each
    after its operator (``+ b``). None where ruff would split a bracket instead (one operator whose
    first or last operand is bracketed: ``s * f(...)``) and where ``text`` is no such chain."""
    if not _MAYBE_OPERATOR.search(text):
        return None
    head = _HEADS.match(text)
    expr = text[head.end():] if head else text.removesuffix(",")
    operands = _chain(expr)
    if operands is None or len(operands) == 2 and (
            _opens(operands[0][1]) or _closes_in_line(text, operands[1][1], indent)):
        return None
    if head is None:  # an element: the bracket around it groups it
        lines = _chain_lines(operands, indent)
        return (*lines[:-1], lines[-1] + text[len(expr):])
    inner = indent + "    "
    body = [inner + expr] if len(inner) + len(expr) <= LINE_LENGTH else _chain_lines(operands, inner)
    return (indent + head.group() + "(", *body, indent + ")")


def _chain_lines(operands: list[tuple[str, str]], indent: str) -> list[str]:
    """One line per operand, after its operator; an operand too long that is itself a chain (of
    operators binding tighter) goes on at the same indent, as ruff writes it."""
    lines = []
    for operator, operand in operands:
        text = f"{operator} {operand}" if operator else operand
        inner = _chain(operand) if len(indent) + len(text) > LINE_LENGTH else None
        if inner is not None:
            inner[0] = (operator, inner[0][1])
            lines += _chain_lines(inner, indent)
        else:
            lines += split_statement(text, indent)
    return lines


def _chain(expr: str) -> list[tuple[str, str]] | None:
    """``expr``'s operands at its loosest binary operator, each with the operator before it ("" for
    the first); None if ``expr`` is no binary operation (or one of ``**``)."""
    if not expr.isascii():  # (ast's offsets count bytes)
        return None
    node = _expression(expr)
    if not isinstance(node, ast.BinOp) or type(node.op) not in _PRECEDENCE:
        return None
    if isinstance(node.op, ast.Pow) and isinstance(node.right, ast.BinOp) and isinstance(node.right.op, ast.Pow):
        return None
    level = _PRECEDENCE[type(node.op)]
    cuts = []  # (operator start, operator end), last first
    # (a + b) - c parses as ((a + b) - c): walk down the left operands of the same looseness, but
    # not into one the source parenthesises (the text between it and its operator closes a bracket)
    while isinstance(node, ast.BinOp) and _PRECEDENCE.get(type(node.op)) == level:
        start = node.left.end_col_offset
        between = expr[start:node.right.col_offset]
        operator = _OPERATOR.search(between)
        cuts.append((start + operator.start(), start + operator.end()))
        if ")" in between[:operator.start()]:
            break
        node = node.left
    cuts.reverse()
    operands = [("", expr[:cuts[0][0]].strip())]
    for (start, end), (following, _) in zip(cuts, cuts[1:] + [(len(expr), 0)]):
        operands.append((expr[start:end], expr[end:following].strip()))
    return operands


_OPERATOR = re.compile(r"[^\s()]+")  # the operator among the brackets between two operands


def _opens(operand: str) -> bool:
    """Whether the first operand of a one-operator expression starts with a bracket (ruff then splits
    that bracket rather than add parentheses: ``(a + b) * c``)."""
    return operand.lstrip()[:1] in _OPEN


def _closes_in_line(text: str, operand: str, indent: str) -> bool:
    """:func:`_closes` for the last operand of ``text``, where the line up to its bracket fits: ruff
    splits that bracket then (``x = a * f(``), else the operators (``x = (``, ``a``, ``* f(...)``)."""
    if not _closes(operand):
        return False
    stripped = operand.strip()
    opener = _pairs(stripped)[len(stripped) - 1]
    return len(indent) + text.rfind(stripped) + opener + 1 <= LINE_LENGTH


def _closes(operand: str) -> bool:
    """Whether the last operand of a one-operator expression ends with a bracket pair ruff would split
    rather than add parentheses (``s * f(...)``): not an empty one (``x.numel() ** -0.5`` is split at
    its operator), nor a subscript."""
    stripped = operand.strip()
    pairs = _pairs(stripped)
    end = len(stripped) - 1
    if end not in pairs or pairs[end] == end - 1:
        return False
    return stripped[end] in ")}" or stripped[end] == "]" and not _is_call(stripped, pairs[end])


_ATTRIBUTE_END = re.compile(r"(?<=[)\]])(\.\w+)+\Z")  # .a.b after a bracket


def _trailers(text: str, pairs: dict[int, int]) -> list[int]:
    """Closing brackets of the trailing chain ``f(...).g(...)[0]``, last first (of ``f(...).a.b``,
    ``f``'s: ruff splits an attribute's value)."""
    i = len(text.rstrip(":,")) - 1
    attribute = _ATTRIBUTE_END.search(text, 0, i + 1)
    if attribute:
        i = attribute.start() - 1
    found = []
    while i >= 0 and i in pairs:
        found.append(i)
        i = pairs[i] - 1
        i -= len(_NAME_END.search(text, 0, i + 1).group())  # back over the name before the bracket
    return found


def _magic_comma(text: str) -> bool:
    """Whether a bracket of ``text`` ends with a comma (not a one-element tuple): black explodes those."""
    if not _COMMA_CLOSE.search(text):
        return False
    for close, open_ in _pairs(text).items():
        inner = text[open_ + 1:close].rstrip()
        if inner.endswith(","):
            if text[close] == ")" and len(_top_level_commas(inner)) == 1 and not _is_call(text, open_):
                continue  # (x,) is a tuple, not a magic trailing comma
            return True
    return False


def _is_tuple(body: str) -> bool:
    """Whether ``(body)`` is a tuple display (as opposed to a parenthesised expression)."""
    node = _expression(f"({body})")
    if node is None:
        return body.rstrip().endswith(",") or len(_top_level_commas(body)) > 1
    return isinstance(node, ast.Tuple)


def _is_comprehension(opener: str, body: str) -> bool:
    """Whether ``[body]`` / ``{body}`` / ``(body)`` is a comprehension (its commas are not elements)."""
    if not _FOR.search(body):
        return False
    closer = _CLOSE[_OPEN.index(opener)]
    node = _expression(f"{opener}{body}{closer}")
    # (these brackets' own: `f([x for x in y])`'s parentheses hold a list comprehension, are none)
    return isinstance(node, {"[": ast.ListComp, "{": (ast.SetComp, ast.DictComp), "(": ast.GeneratorExp}[opener])


def _comprehension_lines(opener: str, body: str, indent: str) -> list[str] | None:
    """A comprehension too long for its line as ruff writes it: the element (split as a statement
    is), then each ``for`` and ``if`` clause on a line of its own; None where it fits, or is none."""
    if len(indent) + len(body) <= LINE_LENGTH or not body.isascii() or not _is_comprehension(opener, body):
        return None
    node = _expression(f"{opener}{body}{_CLOSE[_OPEN.index(opener)]}")
    ends = [(node.value if isinstance(node, ast.DictComp) else node.elt).end_col_offset]
    for generator in node.generators:
        ends += [generator.iter.end_col_offset] + [test.end_col_offset for test in generator.ifs]
    parts = [body[start - 1:end - 1].strip() for start, end in zip([1] + ends, ends)]
    return [line for part in parts for line in split_statement(part, indent)]


def _is_generator_argument(body: str) -> bool:
    """Whether ``f(body)`` passes one bare generator expression (which takes no trailing comma)."""
    if not _FOR.search(body):
        return False
    call = _expression(f"f({body})")
    return isinstance(call, ast.Call) and len(call.args) == 1 and not call.keywords \
        and isinstance(call.args[0], ast.GeneratorExp)


def _is_call(text: str, open_: int) -> bool:
    before = text[:open_].rstrip()
    return bool(before) and (before[-1].isalnum() or before[-1] in "_)]")


def _split_at(text: str, open_: int, close: int, indent: str) -> list[str]:
    head, body, tail = text[:open_ + 1], text[open_ + 1:close], text[close:]
    inner = indent + "    "
    elements = _top_level_commas(body)
    one_tuple = text[close] == ")" and body.rstrip().endswith(",") and len(elements) == 1 \
        and not _is_call(text, open_)
    lines = [indent + head]
    # x[i]: a comma would make a tuple (x[a, b], already one, splits as a call's arguments do)
    subscript = text[open_] == "[" and _is_call(text, open_) and len(elements) == 1
    # (a + b), (lambda a, b: ...), (x for x in y): a parenthesised expression, not a tuple,
    # where splitting at commas (and adding one) would change what it means
    grouping = _is_comprehension(text[open_], body) or text[open_] == "(" and (
        _is_generator_argument(body) if _is_call(text, open_) else not _is_tuple(body))
    # a split display ([a, b], (a, b), {k: v, ...}) always goes one element per line, as ruff writes it
    display = not grouping and not _is_call(text, open_) and len(elements) > 1
    if grouping:
        lines.extend(_comprehension_lines(text[open_], body.strip(), inner) or split_statement(body.strip(), inner))
    elif subscript or body.strip() and len(inner) + len(body.strip()) <= LINE_LENGTH and not display and (
            not body.rstrip().endswith(",") or one_tuple) and not _magic_comma(body):
        # (a magic comma inside explodes its bracket, and so every bracket around it, as ruff does)
        lines.extend(_string_lines(body.strip(), inner) or (inner + body.strip(),))
    else:
        for element in elements:
            lines.extend(split_statement(element + ",", inner))
    lines.extend(split_statement(tail, indent) if len(indent) + len(tail) > LINE_LENGTH else [indent + tail])
    return lines
