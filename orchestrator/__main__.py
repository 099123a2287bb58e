"""`python -m orchestrator`."""

import sys

from orchestrator.service import main

sys.exit(main())
