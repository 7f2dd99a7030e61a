"""``python -m mt5exec`` runs the CLI."""

import sys

from mt5exec.cli import main

sys.exit(main())
