"""Data sets: reading, integrity checks and subset selection."""
