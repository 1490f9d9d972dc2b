"""``python -m delaydeploy`` (and ``torchrun -m delaydeploy train ...``) runs the CLI."""

import sys

from delaydeploy.cli import main

sys.exit(main())
