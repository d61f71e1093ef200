"""User-facing errors: the CLI prints these as one clear message, never a traceback."""


class TunesmithError(Exception):
    """A mistake in the user's input (config, data, model path) with a message meant for people."""


class ConfigError(TunesmithError):
    pass


class DataError(TunesmithError):
    pass


class ModelError(TunesmithError):
    pass
