"""`python -m providers try ...` / `python -m providers check` (see providers.cli)."""

from __future__ import annotations

import sys

from providers.cli import main

if __name__ == "__main__":
    sys.exit(main())
