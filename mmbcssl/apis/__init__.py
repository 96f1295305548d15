"""Library functions behind the scripts in ``tools/`` (tests call these)."""
