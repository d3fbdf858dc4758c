"""Helpers that start throwaway infrastructure for tests, benchmarks and fault drills.

`profiler.testing.sshd` starts a real OpenSSH server on a loopback port (temporary host key, user key and
config), so the SSH transport can be exercised, and its links cut, without a board;
`profiler.testing.fake_board` stands in for the pipeline's measurement in verification tests. Nothing here runs in a
normal profiling session.
"""
