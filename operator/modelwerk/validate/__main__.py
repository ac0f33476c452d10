"""`python -m modelwerk.validate`: see modelwerk.validate."""

import sys

from modelwerk.validate import main

sys.exit(main())
