"""The `pifi` command line, one module per capability; ``cli.py`` assembles the app.

Each ``*_cmds`` module only parses options, calls the library and renders its result; every default
comes from the library (its dataclass or function signature), never written again here.
"""
