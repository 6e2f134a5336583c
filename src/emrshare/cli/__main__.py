"""``python -m emrshare.cli``: the same as the ``emrshare`` command."""

from emrshare.cli import main

main()
