"""One flat hierarchy of errors that the CLI turns into a single clear line and a non-zero exit."""


class AgentkitError(Exception):
    """Base class: the message is shown to the user as is, on one line, without a traceback."""


class SourceError(AgentkitError):
    """A source cannot be opened or stopped delivering (missing file, corrupt stream, no camera)."""


class ConfigError(AgentkitError):
    """A config file or a CLI option is invalid; the message names the field and the value."""


class ToolError(AgentkitError):
    """A tool call was rejected (unknown tool, bad arguments, out of bounds) or failed while running."""


class PolicyError(AgentkitError):
    """A policy cannot be built (missing checkpoint, unsupported architecture)."""
