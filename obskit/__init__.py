"""obskit: correlated logs, traces and RED metrics for a Python service in one line.

    import obskit
    obskit.init(app, service="checkout")

The public API is re-exported here lazily: importing obskit loads nothing heavy and
configures nothing. See README.md for every setting.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
