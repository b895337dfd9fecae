"""The embedded stack of ``make run``: bootstrap of the environment and the local services."""
