"""Sections of ``benchmarks/reliability_report.py`` beyond ``malformed`` (issue #10).

Each module holds one or two sections: a function taking the report's ``Options`` and
returning ``(counters, rows, notes)`` with integer counters. :mod:`.world` starts what
they share (a node, the contracts, proxy processes, a hospital and an insurer) and stops
it again, even on error.
"""
