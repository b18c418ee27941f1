"""Command-line interface (the only package that imports every stage)."""
