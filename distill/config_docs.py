"""Settings files that carry their own documentation: a dataclass's values as YAML, each key under (or beside) the
comments its field has in the source, so that `--example` files and the code cannot drift apart."""

from __future__ import annotations

import inspect
from dataclasses import fields

import yaml


def field_comments(cls) -> dict[str, tuple[list[str], str]]:
    """For each field of a dataclass: the comment lines right above it in the source and the comment after it."""
    names = {f.name for f in fields(cls)}
    comments, block = {}, []
    for line in inspect.getsource(cls).splitlines():
        text = line.strip()
        if text.startswith("#"):
            block.append(text[1:].strip())
            continue
        name, colon, rest = text.partition(":")
        if colon and name in names and name not in comments:
            comments[name] = (block, rest.split("#", 1)[1].strip() if "#" in rest else "")
        block = []
    return comments


def commented_yaml(values: dict, cls, title: str = "") -> str:
    """`values` (a mapping of cls's fields) as YAML that loads back to the same mapping, with cls's comments."""
    docs = field_comments(cls)
    out = [f"# {line}" for line in title.splitlines()]
    for key, value in values.items():
        above, beside = docs.get(key, ([], ""))
        # collections of scalars on one line ([100, 300, full]), the keys themselves never in flow style
        flow = None if isinstance(value, (list, dict)) else False
        entry = yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=flow, width=1000).rstrip("\n")
        if above:
            out += ["", *(f"# {line}" for line in above)]
        if beside and "\n" in entry:  # a list or mapping spans lines: its comment goes above it
            out += [f"# {beside}", entry]
        else:
            out.append(f"{entry}  # {beside}" if beside else entry)
    return "\n".join(out) + "\n"
