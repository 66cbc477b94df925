"""The adapters' tests share the runtime tests' fixtures (obskit reset around every test)."""

from tests.runtime.conftest import _reset_obskit, obskit_capture, receiver

__all__ = ["_reset_obskit", "obskit_capture", "receiver"]
