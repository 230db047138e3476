"""A ComfyUI 0.3.64 emulator: same routes, shapes and events, with emulated work."""

from .app import EMULATOR, create_emulator_app
from .cli import add_emulator_arguments, options_from_args
from .emulator import Emulator
from .faults import Faults
from .options import EmulatorOptions

__all__ = [
    "EMULATOR",
    "Emulator",
    "EmulatorOptions",
    "Faults",
    "add_emulator_arguments",
    "create_emulator_app",
    "options_from_args",
]
