"""Local training: the task interface, built-in tasks, and the canonical model encoding.

Pure torch: nothing here does network or ledger I/O.
"""
