"""`python -m packrat_lab.cli` runs the packrat-lab command."""

import sys

from packrat_lab.cli import main

sys.exit(main())
