"""Build and maintenance tools: they build the files the package ships and check the repository's shape.

Run them from the repository root as modules, ``python -m tools.NAME --help`` (``python -m`` puts the root
on the import path, so they use this checkout's ``discinvert`` and ``benchmarks``; no tool edits
``sys.path``). ``tools/README.md`` maps each tool to what it writes and its command.
"""
