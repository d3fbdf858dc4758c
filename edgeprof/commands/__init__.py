"""One module per CLI command: a docstring (the help), add_arguments(parser) and run(args) -> int."""

import os

DEFAULT_DB = os.environ.get("EDGEPROF_DB", "edgeprof.db")
