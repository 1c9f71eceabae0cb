"""The one exception type that the command-line entry points turn into a one-line error."""


class GanlabError(Exception):
    """A problem with the user's input (config, data, checkpoint, path).

    The message is one line naming the problem and what to do about it; the entry
    points print it as ``error: <message>`` and exit non-zero without a traceback.
    """
