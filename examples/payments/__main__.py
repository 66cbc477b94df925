"""`python -m examples.payments --port 0 --port-file F` runs payments (werkzeug) on 127.0.0.1."""

from __future__ import annotations

import sys

from examples.lab.serve import main

sys.exit(main("examples.payments.app", "wsgi"))
