"""The serving tests' fixtures live in tests/support/serving_fixtures.py.

They are shared with tests/proof (tests/conftest.py loads them as a plugin for every folder), so that one
test session trains the champion once whichever folders run.
"""
