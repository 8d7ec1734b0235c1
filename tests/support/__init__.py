"""Helpers shared by the test modules: paths, captures, strategies, tshark and CLI runners.

Test modules import from here, never from one another; nothing here is collected as a test.
"""
