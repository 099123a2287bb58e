"""`python -m retention`."""

import sys

from retention.service import main

sys.exit(main())
