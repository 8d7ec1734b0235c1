"""The contract between the hand-written runtime and the generated Lua: names.

dissector/runtime.lua reads fields (R.F / F), experts (R.E / E), constants
(R.C / C), descriptor entries (d.x) and functions and tables the generated
code puts into R (R.header, R.msg_len, ...). Each must be one the generator
declares: a name used only by convention would fail at run time, on the
first packet that reaches it.
"""

from __future__ import annotations

import re

from lmaho_dissector import generator
from support.paths import DISSECTOR_RUNTIME

GENERATED = generator.generate()
RUNTIME = DISSECTOR_RUNTIME.read_text()
# The runtime without its comments: names in prose are not uses.
CODE = re.sub(r"--[^\n]*", "", RUNTIME)


def used(pattern: str) -> set[str]:
    return set(re.findall(pattern, CODE))


def declared(pattern: str) -> set[str]:
    return set(re.findall(pattern, GENERATED, re.MULTILINE))


def test_every_field_expert_and_constant_the_runtime_reads_is_generated() -> None:
    fields = declared(r"^F\.(\w+) = ProtoField\.")
    experts = declared(r"^E\.(\w+) = ProtoExpert\.new")
    constants_block = GENERATED.split("\nR.C = {\n", 1)[1].split("\n}", 1)[0]
    constants = set(re.findall(r"^\s+(\w+) = ", constants_block, re.MULTILINE))
    assert fields and experts and constants
    assert used(r"\bF\.(\w+)") - fields == set()
    assert used(r"\bE\.(\w+)") - experts == set()
    assert used(r"\bC\.(\w+)") - constants == set()


def test_every_descriptor_entry_the_runtime_reads_is_generated_or_its_own() -> None:
    entries = declared(r"^    (\w+) = ")
    own = used(r"\b(?:d|od)\.(\w+)\s*=[^=]")
    read = used(r"\b(?:d|od)\.(\w+)")
    assert read - own - entries == set()


def assigned(text: str) -> set[str]:
    """Names given to R's entries in ``text``: ``R.x = ...``, ``R.x, R.y = ...``,
    ``function R.x``."""
    targets = re.findall(r"^\s*((?:R\.\w+\s*,\s*)*R\.\w+)\s*=[^=]", text, re.MULTILINE)
    names = {name for target in targets for name in re.findall(r"R\.(\w+)", target)}
    return names | set(re.findall(r"function R\.(\w+)", text))


def test_every_table_and_function_the_runtime_takes_from_r_is_defined() -> None:
    defined_here = assigned(CODE)
    defined_there = assigned(GENERATED.split("-- ---- end of runtime", 1)[1])
    missing = used(r"\bR\.(\w+)") - defined_here - defined_there
    assert missing == set()


def test_the_generated_lua_names_what_it_declares() -> None:
    # Tables and fields by name, never by position (a new field renumbers nothing).
    assert not re.search(r"\b(?:F|VS|FL|S)\[\d+\]", GENERATED)
    assert 'F.lma_ho_init_flags_t = ProtoField.bool("lmaho.lma_ho_init.flags.t"' in GENERATED
