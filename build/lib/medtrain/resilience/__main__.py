"""`python -m medtrain.resilience ...`: the launcher (see medtrain.resilience.launcher)."""

import sys

from medtrain.resilience.launcher import main

sys.exit(main())
