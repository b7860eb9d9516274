#!/usr/bin/env python3
"""Converts msg-split.yaml and msg-join.yaml into msg-split.txt and msg-join.txt,
the line format tests/irc_parser_vectors.rs reads (so the Rust tests need no
YAML parser). Run once after replacing the YAML files; needs PyYAML:

    python3 tests/data/irc-parser-tests/convert.py

Format: one vector per block, blocks separated by an empty line, lines starting
with '#' are comments. Each line is a field name, a tab, and a value:

    desc    free text (msg-join only)
    input   the line to parse (msg-split only)
    tag     key, a tab, value (tags with no value have an empty one)
    source  the source without its ':'
    verb    the command
    param   one parameter, in order
    match   one accepted serialization (msg-join only)

Values are escaped so that every field stays on one line: backslash as '\\\\',
tab '\\t', CR '\\r', LF '\\n', any other control character as '\\xHH'.
"""

import pathlib

import yaml

HERE = pathlib.Path(__file__).resolve().parent


def escape(text):
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif c == "\n":
            out.append("\\n")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append("\\x%02x" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def atoms(fields, a):
    for key, value in (a.get("tags") or {}).items():
        fields.append("tag\t%s\t%s" % (escape(key), escape(value or "")))
    if a.get("source") is not None:
        fields.append("source\t" + escape(a["source"]))
    fields.append("verb\t" + escape(a["verb"]))
    for param in a.get("params") or []:
        fields.append("param\t" + escape(param))


def convert(name, head):
    with open(HERE / (name + ".yaml"), encoding="utf-8") as f:
        tests = yaml.safe_load(f)["tests"]
    blocks = []
    for test in tests:
        fields = []
        if "desc" in test:
            fields.append("desc\t" + escape(test["desc"]))
        if "input" in test:
            fields.append("input\t" + escape(test["input"]))
        atoms(fields, test["atoms"])
        for match in test.get("matches") or []:
            fields.append("match\t" + escape(match))
        blocks.append("\n".join(fields) + "\n")
    text = head % (name, len(tests)) + "\n" + "\n".join(blocks)
    with open(HERE / (name + ".txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


HEAD = (
    "# Generated from %s.yaml by convert.py (see README.md); do not edit.\n"
    "# %d vectors. Fields: name<TAB>value, escapes \\\\ \\t \\r \\n \\xHH.\n"
)

if __name__ == "__main__":
    convert("msg-split", HEAD)
    convert("msg-join", HEAD)
