"""edgeprof board-side agent.

Copied alone to the boards (Python 3.6+, stdlib + numpy), so nothing here imports the rest of edgeprof.
"""

__version__ = "0.1.0"
