"""The capture checker: every LMA handover of a capture against the draft's procedure.

``lmaho check`` and ``lmaho ladder`` are built on it. Frames decoded by
:mod:`lmaho_wire.dissect` go into a :class:`ProcedureAnalyser`
(:mod:`lmaho_check.analyser`), which groups the signalling into handovers,
follows each MN's tunnels (:mod:`lmaho_check.tunnels`) and has every closed
handover judged (:mod:`lmaho_check.judges`) against the procedure as
:mod:`lmaho_procedure` declares it; what comes out is the report model of
:mod:`lmaho_check.report`. :func:`check_records` does a whole capture in one
call::

    from lmaho_check import check_records
    from lmaho_wire.dissect import analyse_capture

    result = check_records(analyse_capture("pcaps/handover.pcapng"))
    assert not result.violations
"""

from .analyser import CheckResult, Counters, EntityBook, ProcedureAnalyser, check_records
from .report import (
    DataSegment,
    Entity,
    FrameEvent,
    Handover,
    Issue,
    ResentRequest,
    Severity,
    Sighting,
    StepState,
    Verdict,
    printable,
)

__all__ = [
    "CheckResult",
    "Counters",
    "DataSegment",
    "Entity",
    "EntityBook",
    "FrameEvent",
    "Handover",
    "Issue",
    "ProcedureAnalyser",
    "ResentRequest",
    "Severity",
    "Sighting",
    "StepState",
    "Verdict",
    "check_records",
    "printable",
]
