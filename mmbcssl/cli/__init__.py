"""The logic behind the entry scripts in ``tools/``: each module has a
``main(argv) -> exit code`` that the thin script calls and tests call
directly."""
