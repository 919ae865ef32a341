"""liqmon: a streaming liquidation monitor for derivatives venues."""

from monitor.errors import ConfigError, InputError, LiqmonError, UnknownInstrument

__all__ = ["ConfigError", "InputError", "LiqmonError", "UnknownInstrument"]
__version__ = "0.1.0"
