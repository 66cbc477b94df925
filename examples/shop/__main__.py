"""`python -m examples.shop --port 0 --port-file F` runs shop under uvicorn on 127.0.0.1."""

from __future__ import annotations

import sys

from examples.lab.serve import main

sys.exit(main("examples.shop.app", "asgi"))
