"""swarmctl: the command-line client of swarmd (the Control API over the local socket or mTLS).

Importing the package quiets grpc's C core unless the user asked for its logs: swarmctl promises
one line on stderr per error, and C-core log lines would break that.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

__all__: list[str] = []
