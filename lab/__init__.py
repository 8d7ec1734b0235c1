"""``lmaho lab``: the draft's Figure 1 built in Linux network namespaces, run live.

One namespace per entity (bMAG, PLMA, NLMA, policy store) and per host (the
MNs, the CN), veth pairs for the scenario's links, addresses and routes set
over netlink (:mod:`lmaho_lab.topology`); the live agents of
:mod:`lmaho_live` started inside them; ICMPv6 echo and a verified TCP stream
between CN and MN (:mod:`lmaho_lab.traffic`); every link captured into one
pcapng (:mod:`lmaho_lab.capture`); the handovers triggered and measured
(:mod:`lmaho_lab.run`, :mod:`lmaho_lab.report`). Everything a run creates is
recorded in a state file under ``/run/lmaho`` (:mod:`lmaho_lab.ledger`) so
that ``lmaho lab down`` can remove what a killed run left.
"""
