"""The command groups, one module each; :mod:`emrshare.cli` wires them into the app."""
