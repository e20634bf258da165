"""`python -m hydro_rules` is `hydro-rules`."""

import sys

from .cli import main

sys.exit(main())
