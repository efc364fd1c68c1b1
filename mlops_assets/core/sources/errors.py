class SourceError(RuntimeError):
    """A source answered something unusable; the message names the URL (never the key), the
    status where there is one and an excerpt of what came back."""
