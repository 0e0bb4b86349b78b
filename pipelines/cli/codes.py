"""Exit codes a scheduler can act on."""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2  # usage or configuration
EXIT_AUTH = 3  # token missing, malformed or refused
EXIT_API = 4  # the API failed, or the server is not the API
EXIT_DESTINATION = 5  # the warehouse failed, or its DuckDB file stayed locked
EXIT_STALE = 6  # `status`: the last load is too old
