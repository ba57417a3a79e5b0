"""YAML files read safely, with the line of any key at hand for error messages.

Every document is read by ``BoundedLoader``: nesting deeper than ``MAX_DEPTH``
(PyYAML composes recursively: a deep document is a RecursionError) and documents
whose aliases would expand past ``MAX_NODES`` nodes are a ``YAMLError``. YAML a
client sends (a training bundle's domain and config, a configuration override, the
files of a model archive) may hold no anchors or aliases at all (``ClientLoader``):
633 bytes of nested aliases expand to millions of nodes, and every copy of the
expansion (the job record, the trainer, ``GET /models``) pays again. Files named on
the command line are the operator's own and keep them.

Scalars resolve as YAML 1.2 (what Rasa's ruamel reader uses), not PyYAML's 1.1:
``yes``, ``no``, ``on``, ``off`` are strings (a categorical slot with values
``[yes, no]`` keeps them), ``0777`` is 777 and ``10:30`` is a string.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from worker.errors import TrainingDataError
from worker.jsonlimits import MAX_DEPTH

#: the most nodes a document may have with every alias expanded
MAX_NODES = 1_000_000


class YAMLLimitError(yaml.YAMLError):
    """A document within the syntax but beyond what the server reads."""


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core-schema booleans and numbers, that
    refuses a key given twice in one mapping with different values: PyYAML keeps
    the last silently, so a second ``responses:`` would drop the first. (The
    same value twice is accepted: Rasa's own formbot domain lists ``actions``
    twice.)"""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        first: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # NOTE: keys given beside a `<<` merge override it
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                continue  # unhashable: PyYAML's own error follows
            if key not in first:
                first[key] = value_node
            elif self.construct_object(first[key], deep=True) != self.construct_object(
                value_node, deep=True
            ):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice, with different values",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.Node) -> int:
        value = str(self.construct_scalar(node))  # type: ignore[arg-type]
        if value.startswith(("0o", "+0o", "-0o")):
            return int(value.replace("0o", ""), 8)
        if value.startswith(("0x", "+0x", "-0x")):
            return int(value.replace("0x", ""), 16)
        return int(value, 10)


def _yaml12_resolvers() -> None:
    resolvers = {
        key: [
            (tag, rx) for tag, rx in items if not tag.endswith(("bool", "int", "float"))
        ]
        for key, items in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Yaml12Loader.yaml_implicit_resolvers = resolvers
    Yaml12Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    )
    Yaml12Loader.add_implicit_resolver(
        "tag:yaml.org,2002:int",
        re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
        list("-+0123456789"),
    )
    Yaml12Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+0123456789."),
    )
    Yaml12Loader.add_constructor(
        "tag:yaml.org,2002:int", Yaml12Loader.construct_yaml_int
    )


_yaml12_resolvers()


class BoundedLoader(Yaml12Loader):
    """``SafeLoader`` that bounds nesting and the size of the expanded document."""

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._depth = 0
        self._expanded = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YAMLLimitError(f"nesting deeper than {MAX_DEPTH} levels")
        start = self._expanded
        try:
            alias = self.check_event(yaml.AliasEvent)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if alias:
            self._expanded += self._sizes.get(id(node), 1)
        else:
            self._expanded += 1
            self._sizes[id(node)] = self._expanded - start
        if self._expanded > MAX_NODES:
            raise YAMLLimitError(f"more than {MAX_NODES} nodes with aliases expanded")
        return node


class ClientLoader(BoundedLoader):
    """A safe loader that refuses anchors and aliases (data from clients)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None,
                None,
                "anchors and aliases (& and *) are not accepted in data sent to "
                "the server",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def load_client_yaml(text: str, path: str = "<request>") -> Any:
    """``text`` (from a client) as data; TrainingDataError names what is wrong."""
    return YamlDoc(path, text, client=True).data


class _Yaml12Dumper(yaml.SafeDumper):
    """Quotes every string that either YAML 1.1 or 1.2 would read as another type,
    so what ``dump_yaml`` writes reads back the same with either."""


for _key, _items in Yaml12Loader.yaml_implicit_resolvers.items():
    for _tag, _regexp in _items:
        _Yaml12Dumper.add_implicit_resolver(_tag, _regexp, [_key])


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """Multi-line text as a literal block (``examples: |``), as Rasa writes it."""
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Yaml12Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Yaml12Dumper, allow_unicode=True, sort_keys=False)


class YamlDoc:
    """A parsed YAML document that can say on which line a value starts."""

    def __init__(self, path: str, text: str, *, client: bool = False):
        self.path = path
        try:
            # NOTE: the reader checks the characters as it is made: inside the try.
            loader = (ClientLoader if client else BoundedLoader)(text)
            try:
                self._node = loader.get_single_node()
                self.data: Any = (
                    loader.construct_document(self._node)
                    if self._node is not None
                    else None
                )
            finally:
                loader.dispose()
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(err, "problem", None) or str(err)
            raise TrainingDataError(f"invalid YAML: {problem}", path, line) from err

    def line(self, *keys: Any) -> int | None:
        """1-based line of the value at ``keys`` (mapping keys or list indices)."""
        node = self._node
        for key in keys:
            if isinstance(node, yaml.MappingNode):
                found = None
                for k, v in node.value:
                    if k.value == key or k.value == str(key):
                        found = v if key is not keys[-1] else k
                        break
                node = found
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
                node = node.value[key] if 0 <= key < len(node.value) else None
            else:
                node = None
            if node is None:
                return None
        return node.start_mark.line + 1 if node is not None else None

    def where(self, *keys: Any) -> tuple[str, int | None]:
        """The file and line of the value at ``keys``."""
        return self.path, self.line(*keys) if keys else None

    def error(self, message: str, *keys: Any) -> TrainingDataError:
        return TrainingDataError(message, self.path, self.line(*keys) if keys else None)


def read_yaml(path: str | Path) -> YamlDoc:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise TrainingDataError("file not found", str(p)) from err
    except UnicodeDecodeError as err:
        raise TrainingDataError("file is not UTF-8", str(p)) from err
    return YamlDoc(str(p), text)
