"""The built-in emulator of the Anthropic Messages and Message Batches APIs (see server.py)."""

from curation.emulator.server import Emulator, EmulatorConfig

__all__ = ["Emulator", "EmulatorConfig"]
