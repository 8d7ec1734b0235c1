"""The schema-derived strategies of :mod:`support.strategies` cover every field type."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lmaho_wire import current_schema
from lmaho_wire.fields import MessageBody, OptionBody
from support.strategies import fields_of


def test_every_schema_field_type_has_a_strategy() -> None:
    """Walk every message and option once: an unknown construct type fails here."""
    bodies: list[OptionBody | MessageBody] = [
        *current_schema().messages.values(),
        *current_schema().options.values(),
    ]

    @settings(max_examples=5, deadline=None, database=None)
    @given(st.data())
    def walk(data: st.DataObject) -> None:
        for body in bodies:
            data.draw(fields_of(body))

    walk()


def test_schema_covers_the_issue_s_messages_and_options() -> None:
    schema = current_schema()
    names = {b.name for b in schema.messages.values()} | {
        b.proxy_name for b in schema.messages.values() if b.proxy_name
    }
    assert names >= {
        "PBU", "PBA", "LMA_HO_Req", "LMA_HO_Resp", "LMA_HO_Init", "LMA_HAck", "Update",
        "Update_Ack",
    }  # fmt: skip
    keys = {b.key for b in schema.options.values()}
    assert keys >= {
        "pad1", "padn", "mn_identifier", "home_network_prefix", "handoff_indicator",
        "access_technology_type", "mn_link_layer_identifier", "link_local_address",
        "timestamp", "context_request", "lma_address", "vendor_specific", "experimental",
        "new_ap_id", "previous_lma_address", "mag_ipv6_address",
    }  # fmt: skip
