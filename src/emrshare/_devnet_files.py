"""Old home of the devnet's state-file readers, now :mod:`emrshare.devnet._files`."""

# re-export: removed after r11
from emrshare.devnet._files import read_pids, read_settings

__all__ = ["read_pids", "read_settings"]
