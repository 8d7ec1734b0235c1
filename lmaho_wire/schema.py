"""The wire format: every message and mobility option, declared once with construct.

Read docs/wire-format.md beside this package for the design. Everything else
(the decoder, the builder, the JSON printer, the Wireshark Lua generator)
reads the objects declared here; nothing about the wire format is written a
second time. The draft's type numbers come from :mod:`lmaho_wire.numbers`, so
the schema is made by :func:`make_schema` for a given set of numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from construct import (
    Bytes,
    Construct,
    FixedSized,
    GreedyBytes,
    GreedyRange,
    Int8ub,
    Int16ub,
    Int32ub,
    Struct,
    Switch,
    Terminated,
    stream_read_entire,
    stream_tell,
    stream_write,
    this,
)

from .fields import (
    Flags,
    HexColon,
    IPv4Address,
    IPv6Address,
    MessageBody,
    NamedEnum,
    OptionBody,
    Reserved,
    Scaled,
    Text,
    TimestampField,
    unrename,
)
from .numbers import Numbers
from .options import OptionSpec, walk_options
from .plan import make_plan

# --- Enumerations -----------------------------------------------------------

IANA_MH_TYPES: dict[str, int] = {
    "BRR": 0, "HoTI": 1, "CoTI": 2, "HoT": 3, "CoT": 4,
    "BU": 5, "BA": 6, "BE": 7, "FBU": 8, "FBack": 9, "FNA": 10,
    "Experimental": 11, "HAS": 12, "Heartbeat": 13, "HI": 14, "HAck": 15,
    "BRI": 16, "LRI": 17, "LRA": 18, "UPN": 19, "UPA": 20,
    "Flow_Binding": 21, "Subscription_Query": 22, "Subscription_Response": 23,
}  # fmt: skip

#: RFC 6275 6.1.8 / RFC 5213 8.9: a status value below this accepts the request, this and
#: above refuses it. The draft's responses follow the Binding Acknowledgement
#: (docs/wire-format.md 4). The one place the threshold is written.
FIRST_ERROR_STATUS = 128


def is_success(status: int) -> bool:
    """Whether a response's Status value accepts its request."""
    return status < FIRST_ERROR_STATUS


BA_STATUS: dict[str, int] = {
    "ACCEPTED": 0,
    "ACCEPTED_PREFIX_DISCOVERY_NECESSARY": 1,
    "REASON_UNSPECIFIED": 128,
    "ADMINISTRATIVELY_PROHIBITED": 129,
    "INSUFFICIENT_RESOURCES": 130,
    "HOME_REGISTRATION_NOT_SUPPORTED": 131,
    "NOT_HOME_SUBNET": 132,
    "NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE": 133,
    "DUPLICATE_ADDRESS_DETECTION_FAILED": 134,
    "SEQUENCE_NUMBER_OUT_OF_WINDOW": 135,
    "EXPIRED_HOME_NONCE_INDEX": 136,
    "EXPIRED_CARE_OF_NONCE_INDEX": 137,
    "EXPIRED_NONCES": 138,
    "REGISTRATION_TYPE_CHANGE_DISALLOWED": 139,
    "SERVICE_AUTHORIZATION_FAILED": 151,
    "PROXY_REG_NOT_ENABLED": 152,
    "NOT_LMA_FOR_THIS_MOBILE_NODE": 153,
    "MAG_NOT_AUTHORIZED_FOR_PROXY_REG": 154,
    "NOT_AUTHORIZED_FOR_HOME_NETWORK_PREFIX": 155,
    "TIMESTAMP_MISMATCH": 156,
    "TIMESTAMP_LOWER_THAN_PREV_ACCEPTED": 157,
    "MISSING_HOME_NETWORK_PREFIX_OPTION": 158,
    "BCE_PBU_PREFIX_SET_DO_NOT_MATCH": 159,
    "MISSING_MN_IDENTIFIER_OPTION": 160,
    "MISSING_HANDOFF_INDICATOR_OPTION": 161,
    "MISSING_ACCESS_TECH_TYPE_OPTION": 162,
    "GRE_KEY_OPTION_REQUIRED": 163,
}

# Status of LMA_HO_Resp, LMA_HAck and Update_Ack (docs/wire-format.md 4);
# success or refusal by is_success().
HANDOVER_STATUS: dict[str, int] = {
    "ACCEPTED": 0,
    "REASON_UNSPECIFIED": 128,
    "ADMINISTRATIVELY_PROHIBITED": 129,
    "INSUFFICIENT_RESOURCES": 130,
    "UNKNOWN_MOBILE_NODE": 131,
    "NO_NLMA_AVAILABLE": 132,
    "CONTEXT_INCOMPLETE": 133,
    "TUNNEL_SETUP_FAILED": 134,
    "NLMA_REJECTED_HANDOVER": 135,
    "POLICY_UPDATE_FAILED": 136,
    "HANDOVER_IN_PROGRESS": 137,
}

MN_ID_SUBTYPES: dict[str, int] = {
    "NAI": 1, "IPV6_ADDRESS": 2, "IMSI": 3, "P_TMSI": 4,
    "EUI48": 5, "EUI64": 6, "GUTI": 7, "DUID": 8,
}  # fmt: skip

HANDOFF_INDICATORS: dict[str, int] = {
    "NEW_INTERFACE": 1,
    "HANDOFF_BETWEEN_INTERFACES": 2,
    "HANDOFF_BETWEEN_MAGS": 3,
    "UNKNOWN": 4,
    "NOT_CHANGED": 5,
}

ACCESS_TECHNOLOGIES: dict[str, int] = {
    "VIRTUAL": 1, "PPP": 2, "IEEE_802_3": 3, "IEEE_802_11": 4, "IEEE_802_16E": 5,
    "GERAN": 6, "UTRAN": 7, "E_UTRAN": 8, "EHRPD": 9, "HRPD": 10, "1XRTT": 11,
    "UMB": 12, "NB_IOT": 13,
}  # fmt: skip

ADDRESS_CODES: dict[str, int] = {"IPV6": 1, "IPV4": 2}

# The identifier kinds of the New AP ID option (docs/wire-format.md 5.1).
AP_ID_TYPES: dict[str, int] = {"BSSID": 1, "EUI64": 2, "NAME": 3, "CELL_ID": 4}

# --- Field building blocks ---------------------------------------------------

# Descriptions of the fields every message's fixed part shares (Wireshark shows them).
SEQUENCE = "Sequence Number: pairs a response with its request"
FLAGS = "Flag bits of the message"
STATUS = (
    f"Status: below {FIRST_ERROR_STATUS} accepts the request, "
    f"{FIRST_ERROR_STATUS} and above refuses it"
)
LIFETIME_REQUESTED = "Lifetime requested for the binding"
LIFETIME_GRANTED = "Lifetime granted for the binding"

Lifetime = Scaled(Int16ub, 4, "s")
Reserved8 = Reserved(Int8ub)
Reserved16 = Reserved(Int16ub)

# --- Option data ---------------------------------------------------------------

ADDRESS_BODY = Struct(
    "option_code" / NamedEnum(Int8ub, **ADDRESS_CODES) * "Address family of the address",
    "reserved" / Reserved8 * "Reserved, sent as zero",
    "address"
    / Switch(
        this.option_code,
        {
            ADDRESS_CODES["IPV6"]: IPv6Address(Bytes(16)),
            ADDRESS_CODES["IPV4"]: IPv4Address(Bytes(4)),
        },
        default=HexColon(GreedyBytes),
    )
    * "The LMA address",
    Terminated,
)

STANDARD_OPTIONS: dict[int, OptionBody] = {
    0: OptionBody(Struct(), key="pad1", title="Pad1", reference="RFC 6275 6.2.2", repeatable=True),
    1: OptionBody(
        Struct("padding" / HexColon(GreedyBytes) * "Padding octets, zero when sent"),
        key="padn",
        title="PadN",
        reference="RFC 6275 6.2.3",
        repeatable=True,
    ),
    2: OptionBody(
        Struct(
            "refresh_interval"
            / Scaled(Int16ub, 4, "s")
            * "Interval after which the mobile node should refresh its binding"
        ),
        key="binding_refresh_advice",
        title="Binding Refresh Advice",
        reference="RFC 6275 6.2.4",
        align=(2, 0),
    ),
    3: OptionBody(
        Struct("address" / IPv6Address(Bytes(16)) * "The care-of address to register"),
        key="alternate_care_of_address",
        title="Alternate Care-of Address",
        reference="RFC 6275 6.2.5",
        align=(8, 6),
    ),
    4: OptionBody(
        Struct(
            "home_nonce_index" / Int16ub * "Index of the home nonce used",
            "care_of_nonce_index" / Int16ub * "Index of the care-of nonce used",
        ),
        key="nonce_indices",
        title="Nonce Indices",
        reference="RFC 6275 6.2.6",
        align=(2, 0),
    ),
    5: OptionBody(
        Struct("authenticator" / HexColon(GreedyBytes) * "Authenticator of the binding"),
        key="binding_authorization_data",
        title="Binding Authorization Data",
        reference="RFC 6275 6.2.7",
        align=(8, 2),
    ),
    8: OptionBody(
        Struct(
            "subtype" / NamedEnum(Int8ub, **MN_ID_SUBTYPES) * "Kind of identifier",
            "identifier"
            / Switch(
                this.subtype,
                {
                    MN_ID_SUBTYPES["NAI"]: Text(GreedyBytes),
                    MN_ID_SUBTYPES["IPV6_ADDRESS"]: IPv6Address(Bytes(16)),
                },
                default=HexColon(GreedyBytes),
            )
            * "The mobile node's identifier",
            Terminated,
        ),
        key="mn_identifier",
        title="Mobile Node Identifier",
        reference="RFC 4283, RFC 8371",
        min_length=1,
    ),
    18: OptionBody(
        Struct("data" / HexColon(GreedyBytes) * "Experimental data"),
        key="experimental",
        title="Experimental",
        reference="RFC 5096",
        repeatable=True,
    ),
    19: OptionBody(
        Struct(
            "vendor_id" / Int32ub * "IANA enterprise number of the vendor",
            "subtype" / Int8ub * "Vendor-defined kind of data",
            "data" / HexColon(GreedyBytes) * "Vendor-specific data",
        ),
        key="vendor_specific",
        title="Vendor-Specific",
        reference="RFC 5094",
        repeatable=True,
        align=(4, 2),
        min_length=5,
    ),
    22: OptionBody(
        Struct(
            "reserved" / Reserved8 * "Reserved, sent as zero",
            "prefix_length" / Int8ub * "Length of the home network prefix in bits",
            "prefix" / IPv6Address(Bytes(16)) * "The mobile node's home network prefix",
        ),
        key="home_network_prefix",
        title="Home Network Prefix",
        reference="RFC 5213 8.3",
        repeatable=True,
        align=(8, 4),
    ),
    23: OptionBody(
        Struct(
            "reserved" / Reserved8 * "Reserved, sent as zero",
            "indicator" / NamedEnum(Int8ub, **HANDOFF_INDICATORS) * "Kind of handoff",
        ),
        key="handoff_indicator",
        title="Handoff Indicator",
        reference="RFC 5213 8.4",
    ),
    24: OptionBody(
        Struct(
            "reserved" / Reserved8 * "Reserved, sent as zero",
            "technology"
            / NamedEnum(Int8ub, **ACCESS_TECHNOLOGIES)
            * "Access technology the mobile node attaches by",
        ),
        key="access_technology_type",
        title="Access Technology Type",
        reference="RFC 5213 8.5",
    ),
    25: OptionBody(
        Struct(
            "reserved" / Reserved16 * "Reserved, sent as zero",
            "identifier" / HexColon(GreedyBytes) * "Link-layer identifier of the mobile node",
        ),
        key="mn_link_layer_identifier",
        title="Mobile Node Link-layer Identifier",
        reference="RFC 5213 8.6",
        align=(8, 2),
        min_length=2,
    ),
    26: OptionBody(
        Struct("address" / IPv6Address(Bytes(16)) * "Link-local address of the access link"),
        key="link_local_address",
        title="Link-local Address",
        reference="RFC 5213 8.7",
        align=(8, 6),
    ),
    27: OptionBody(
        Struct("timestamp" / TimestampField() * "Time the message was sent"),
        key="timestamp",
        title="Timestamp",
        reference="RFC 5213 8.8",
        align=(8, 2),
    ),
    40: OptionBody(
        Struct(
            "reserved" / Reserved16 * "Reserved, sent as zero",
            "requests"
            / GreedyRange(
                Struct(
                    "request_type" / Int8ub * "Mobility option type of the context requested",
                    "request_length" / Int8ub * "Octets of request data",
                    "data" / HexColon(Bytes(this.request_length)) * "Request data",
                )
            )
            * "The context requests",
            Terminated,
        ),
        key="context_request",
        title="Context Request",
        reference="RFC 5949 6.2.3",
        min_length=2,
    ),
    41: OptionBody(
        ADDRESS_BODY,
        key="lma_address",
        title="LMA Address",
        reference="RFC 5949 6.2.4",
        min_length=2,
    ),
    51: OptionBody(
        Struct(
            "reserved" / Reserved8 * "Reserved, sent as zero",
            "address_length" / Int8ub * "Length of the MAG address in bits",
            "address" / IPv6Address(Bytes(16)) * "IPv6 address of the MAG",
        ),
        key="mag_ipv6_address",
        title="MAG IPv6 Address",
        reference="RFC 6705 6.2",
        align=(8, 4),
    ),
}


def draft_options(numbers: Numbers) -> dict[int, OptionBody]:
    """The options this project adds for the draft (docs/wire-format.md 5)."""
    t = numbers.option_types
    return {
        t["new_ap_id"]: OptionBody(
            Struct(
                "id_type" / NamedEnum(Int8ub, **AP_ID_TYPES) * "Kind of access point identifier",
                "identifier"
                / Switch(
                    this.id_type,
                    {AP_ID_TYPES["NAME"]: Text(GreedyBytes)},
                    default=HexColon(GreedyBytes),
                )
                * "Identifier of the access point the mobile node moves to",
                Terminated,
            ),
            key="new_ap_id",
            title="New AP Identifier",
            reference="draft-lim-netext-lma-handover 4.2 (a)",
            min_length=2,
        ),
        t["previous_lma_address"]: OptionBody(
            ADDRESS_BODY,
            key="previous_lma_address",
            title="Previous LMA Address",
            reference="draft-lim-netext-lma-handover 4.1",
            min_length=2,
        ),
    }


UNKNOWN_OPTION = OptionBody(
    Struct("data" / HexColon(GreedyBytes) * "Option data"),
    key="unknown",
    title="Unknown option",
    reference="RFC 6275 6.2.1",
    repeatable=True,
)

# --- Message fixed parts ---------------------------------------------------------

BINDING_UPDATE = MessageBody(
    Struct(
        "sequence" / Int16ub * SEQUENCE,
        "flags" / Flags(
            Int16ub, A=0x8000, H=0x4000, L=0x2000, K=0x1000, M=0x0800, R=0x0400,
            P=0x0200, F=0x0100, T=0x0080, B=0x0040, S=0x0020, D=0x0010,
        ) * FLAGS,
        "lifetime" / Lifetime * LIFETIME_REQUESTED,
    ),
    key="binding_update", name="BU", proxy_flag="P", proxy_name="PBU",
    title="Binding Update", reference="RFC 6275 6.1.7, RFC 5213 8.1", role="request",
)  # fmt: skip

BINDING_ACK = MessageBody(
    Struct(
        "status" / NamedEnum(Int8ub, **BA_STATUS) * STATUS,
        "flags" / Flags(Int8ub, K=0x80, R=0x40, P=0x20, T=0x10, B=0x08, S=0x04, D=0x02) * FLAGS,
        "sequence" / Int16ub * SEQUENCE,
        "lifetime" / Lifetime * LIFETIME_GRANTED,
    ),
    key="binding_ack",
    name="BA",
    proxy_flag="P",
    proxy_name="PBA",
    title="Binding Acknowledgement",
    reference="RFC 6275 6.1.8, RFC 5213 8.2",
    role="response",
    answers="binding_update",
)


def _request(key: str, name: str, title: str, **flags: int) -> MessageBody:
    # Requests mirror the PBU's fixed part (docs/wire-format.md 3).
    return MessageBody(
        Struct(
            "sequence" / Int16ub * SEQUENCE,
            "flags" / Flags(Int16ub, **flags) * FLAGS,
            "lifetime" / Lifetime * LIFETIME_REQUESTED,
        ),
        key=key,
        name=name,
        title=title,
        role="request",
        reference="draft-lim-netext-lma-handover 4.2; docs/wire-format.md",
    )


def _response(key: str, name: str, title: str, answers: str, **flags: int) -> MessageBody:
    # Responses mirror the PBA's fixed part (docs/wire-format.md 3).
    return MessageBody(
        Struct(
            "status" / NamedEnum(Int8ub, **HANDOVER_STATUS) * STATUS,
            "flags" / Flags(Int8ub, **flags) * FLAGS,
            "sequence" / Int16ub * SEQUENCE,
            "lifetime" / Lifetime * LIFETIME_GRANTED,
        ),
        key=key,
        name=name,
        title=title,
        role="response",
        answers=answers,
        reference="draft-lim-netext-lma-handover 4.2; docs/wire-format.md",
    )


def draft_messages(numbers: Numbers) -> dict[int, MessageBody]:
    """The six messages of the draft, keyed by their (overridable) MH types."""
    t = numbers.mh_types
    return {
        t["LMA_HO_Req"]: _request("lma_ho_req", "LMA_HO_Req", "LMA Handover Request"),
        t["LMA_HO_Resp"]: _response(
            "lma_ho_resp", "LMA_HO_Resp", "LMA Handover Response", answers="lma_ho_req"
        ),
        t["LMA_HO_Init"]: _request("lma_ho_init", "LMA_HO_Init", "LMA Handover Initiate", T=0x8000),
        t["LMA_HAck"]: _response(
            "lma_hack", "LMA_HAck", "LMA Handover Acknowledge", answers="lma_ho_init", T=0x80
        ),
        t["Update"]: _request("update", "Update", "Policy Profile Update"),
        t["Update_Ack"]: _response(
            "update_ack", "Update_Ack", "Policy Profile Update Acknowledge", answers="update"
        ),
    }


RAW_BODY = Struct("data" / HexColon(GreedyBytes) * "Message data")


def _plan_spec(body: OptionBody) -> OptionSpec:
    plan = make_plan(body.subcon)

    def decode(data: bytes, pos: int, end: int) -> dict[str, Any]:
        fields: dict[str, Any] = plan(data, pos, end, {})[0]
        return fields

    return OptionSpec(decode, body.length, body.min_length, body.align, body.key, body.title)


class MobilityOptions(Construct):
    """The option list of a Mobility Header: a strict TLV walk over known cases.

    ``cases`` maps option type to :class:`OptionBody`; types not in it are kept
    as :data:`UNKNOWN_OPTION`. Parsing uses the one walk of
    :mod:`lmaho_wire.options` with plans derived from construct, the
    reference the codec's compiled decoders are tested against.
    """

    def __init__(self, cases: dict[int, OptionBody]) -> None:
        super().__init__()
        self.cases = cases
        # The plans, made on first parse (the codec does not parse through here).
        self._specs: tuple[dict[int, OptionSpec], OptionSpec] | None = None

    def _parse(self, stream, context, path):  # type: ignore[no-untyped-def]
        if self._specs is None:
            known = {t: _plan_spec(b) for t, b in self.cases.items()}
            self._specs = (known, _plan_spec(UNKNOWN_OPTION))
        # FixedSized hands a substream whose tell() is the offset in the whole MH.
        base = stream_tell(stream, path)
        data = stream_read_entire(stream, path)
        options, _findings = walk_options(*self._specs, bytes(base) + data, base, base + len(data))
        return options

    def _build(self, obj, stream, context, path):  # type: ignore[no-untyped-def]
        for opt in obj:
            octets = opt.to_bytes()
            stream_write(stream, octets, len(octets), path)
        return obj


class Layout(NamedTuple):
    """The Mobility Header declaration taken apart, as the codec and the generator read it.

    ``header`` holds the header fields, ``offsets`` maps each to its (offset,
    size); ``region`` is the FixedSized message region after them, ``body``
    and ``options`` the Switches (on the MH type) of message bodies and of
    option lists inside it.
    """

    header: Struct
    offsets: dict[str, tuple[int, int]]
    region: FixedSized
    body: Switch
    options: Switch

    @property
    def header_size(self) -> int:
        return sum(size for _, size in self.offsets.values())


@dataclass(frozen=True)
class Schema:
    """The complete wire format for one set of type numbers."""

    numbers: Numbers
    mh_header: Struct
    messages: dict[int, MessageBody]
    options: dict[int, OptionBody]
    mh_type_names: dict[int, str]
    mobility_header: Construct

    def layout(self) -> Layout:
        """:attr:`mobility_header` taken apart; ValueError when it is not shaped so."""
        subcons = list(self.mobility_header.subcons)
        region = unrename(subcons[-1])
        if not isinstance(region, FixedSized):
            raise ValueError("mobility_header must end in a FixedSized message region")
        inner = unrename(region.subcon)
        if not isinstance(inner, Struct) or len(inner.subcons) != 2:
            raise ValueError("the message region must hold a body and an options Switch")
        body, options = (unrename(sc) for sc in inner.subcons)
        if not isinstance(body, Switch) or not isinstance(options, Switch):
            raise ValueError("body and options must be Switches on the MH type")
        offsets: dict[str, tuple[int, int]] = {}
        pos = 0
        for sc in subcons[:-1]:
            try:
                size = int(sc.sizeof())
            except Exception:  # construct raises SizeofError for variable sizes
                raise ValueError(f"header field {sc.name} has no fixed size") from None
            offsets[sc.name] = (pos, size)
            pos += size
        return Layout(Struct(*subcons[:-1]), offsets, region, body, options)

    def message_by_key(self, key: str) -> tuple[int, MessageBody]:
        for mh_type, body in self.messages.items():
            if key in (body.key, body.name, body.proxy_name):
                return mh_type, body
        raise KeyError(key)

    def option_by_key(self, key: str) -> tuple[int, OptionBody]:
        for opt_type, body in self.options.items():
            if body.key == key:
                return opt_type, body
        raise KeyError(key)


def make_schema(numbers: Numbers | None = None) -> Schema:
    """Declare the whole wire format for ``numbers`` (the defaults when None)."""
    numbers = numbers or Numbers()
    messages: dict[int, MessageBody] = {5: BINDING_UPDATE, 6: BINDING_ACK}
    messages.update(draft_messages(numbers))
    options = dict(STANDARD_OPTIONS)
    options.update(draft_options(numbers))
    type_names = {v: k for k, v in IANA_MH_TYPES.items()}
    type_names.update({t: b.name for t, b in messages.items() if t not in (5, 6)})
    mh_header = Struct(
        "payload_proto" / Int8ub * "Payload Proto: the header after this one, 59 (none)",
        "header_len" / Int8ub * "Header Len: length in 8-octet units, not counting the first 8",
        "mh_type"
        / NamedEnum(Int8ub, **{name: t for t, name in type_names.items()})
        * "Mobility Header type (RFC 6275 6.1.1)",
        "reserved" / Reserved8 * "Reserved, sent as zero",
        "checksum" / Int16ub * "Mobility Header checksum (RFC 6275 6.1.1)",
    )
    mobility_header = Struct(
        *mh_header.subcons,
        "message"
        / FixedSized(
            (this.header_len + 1) * 8 - 6,
            Struct(
                "body" / Switch(this._.mh_type, dict(messages), default=RAW_BODY),
                "options"
                / Switch(
                    this._.mh_type,
                    dict.fromkeys(messages, MobilityOptions(options)),
                    default=Struct(),
                ),
            ),
        ),
    )
    return Schema(numbers, mh_header, messages, options, type_names, mobility_header)
