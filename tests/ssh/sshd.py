"""The loopback OpenSSH server moved into the package (benchmarks may not import tests/); re-exported here
for the tests that import `from sshd import ...`."""

from profiler.testing.sshd import FAST, SSHD_PATHS, SshServer, find_sshd, free_port, keygen, write_board

__all__ = ["FAST", "SSHD_PATHS", "SshServer", "find_sshd", "free_port", "keygen", "write_board"]
