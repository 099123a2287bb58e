import sys

from second_pass.service import main

sys.exit(main())
