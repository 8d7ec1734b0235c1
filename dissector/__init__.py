"""Wireshark Lua dissector generated from the lmaho_wire schema (package lmaho_dissector)."""
