import sys

from archive.service import main

sys.exit(main())
