"""Test support shared by the test suites and benchmarks: a scriptable peer process
(``tests.support.node``) and a freezable TCP relay (``tests.support.relay``)."""
