"""A stand-in for ``wine``: records its argv to ``$FAKE_WINE_RECORD``, then execs the program.

Real Wine turns the Unix path of the .exe into a Windows process; here the "exe" is the
fake terminal's shim, which can be exec'd directly, so the pid stays the one the launcher saw.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    Path(os.environ["FAKE_WINE_RECORD"]).write_text(json.dumps(sys.argv))
    os.execv(sys.argv[1], sys.argv[1:])
