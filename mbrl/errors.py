"""Errors that name their cause and the fix; the commands print them as one line and exit with status 2.

On the neutral floor so that any component (an agent, a dynamics model, a loader) can raise them
without importing the pipeline.
"""


class ConfigError(ValueError):
    """A configuration value is unknown, mistyped or inconsistent; the message names the fix."""
