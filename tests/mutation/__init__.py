"""Mutation testing support (``make mutation``): a pytest plugin and the score report."""
