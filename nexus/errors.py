class UserError(Exception):
    """A mistake in the user's input (config, data, paths): reported as one line, exit code 2."""
