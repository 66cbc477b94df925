"""The `obskit` console script and `python -m obskit.cli`: forwards to obskit.generator.cli."""

from obskit.generator.cli import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
