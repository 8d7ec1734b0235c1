"""lmaho_procedure agrees with the schema, and the checker's contents table with both."""

from __future__ import annotations

import string

from lmaho_check.contents import CONTENTS
from lmaho_procedure import (
    DATA_STEPS,
    SIGNALLING_LETTERS,
    SIGNALLING_STEPS,
    STEP_BY_MESSAGE,
    STEPS,
    Rule,
)
from lmaho_wire import current_schema


def test_steps_are_a_to_k_in_order_with_messages_b_to_i() -> None:
    assert "".join(s.letter for s in STEPS) == string.ascii_lowercase[:11]
    assert SIGNALLING_LETTERS == "bcdefghi"
    assert DATA_STEPS == {"j": "downlink", "k": "uplink"}
    assert all(s.sender != s.receiver for s in STEPS)


def test_every_message_is_the_schemas_and_a_response_mirrors_its_requests_peers() -> None:
    schema = current_schema()
    for step in SIGNALLING_STEPS:
        _, body = schema.message_by_key(step.message)
        if body.role != "response":
            continue
        assert body.answers is not None
        _, request = schema.message_by_key(body.answers)
        asked = STEP_BY_MESSAGE[request.proxy_name or request.name]
        assert (step.sender, step.receiver) == (asked.receiver, asked.sender), step.label
        assert asked.letter < step.letter, step.label


def test_the_checkers_contents_cover_each_message_with_options_the_schema_knows() -> None:
    assert set(CONTENTS) == set(SIGNALLING_LETTERS)
    schema = current_schema()
    for contents in CONTENTS.values():
        for key in {*contents.must, *contents.may, *contents.must_on_success}:
            schema.option_by_key(key)


def test_rule_names_are_distinct_and_each_says_what_it_checks() -> None:
    assert len(Rule.__members__) == len(list(Rule))  # equal names would be silent aliases
    assert all(rule.meaning and rule == rule.value for rule in Rule)
