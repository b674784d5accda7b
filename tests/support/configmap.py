"""A ConfigMap volume as the kubelet lays it out and updates it, in a local directory.

Each key is a symlink `<key> -> ..data/<key>`; `..data` is a symlink to a timestamped directory
holding the files. An update writes a new timestamped directory and renames a new `..data` link
over the old one (rename(2): atomic), so a reader of `<key>` sees the old file or the new one,
and the inode of `<key>` itself never changes: what a watcher of the path must cope with.
"""

from __future__ import annotations

import os
from pathlib import Path


class ConfigMapVolume:
    def __init__(self, root: Path):
        self.root = root
        self.generation = 0

    def publish(self, files: dict[str, str]) -> Path:
        """Write `files` ({key: text}) as the next version of the volume; returns the root."""
        self.generation += 1
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = self.root / f"..2026_12_01_00_00_{self.generation:02d}.000000001"
        stamp.mkdir()
        for key, text in files.items():
            (stamp / key).write_text(text)
        staged = self.root / "..data_tmp"
        staged.symlink_to(stamp.name)
        os.replace(staged, self.root / "..data")
        for key in files:
            link = self.root / key
            if not link.is_symlink():
                link.symlink_to(f"..data/{key}")
        return self.root
