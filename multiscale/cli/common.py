"""What several subcommands share: the arguments of a configuration-driven command."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_config_arguments"]


def add_config_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``CONFIG`` (YAML or TOML) and ``--json OUT`` (overrides the config's ``output``)."""
    p.add_argument("config", type=Path, help="configuration file (.yaml, .yml or .toml)")
    p.add_argument("--json", type=Path, help="summary file (overrides 'output' of the config)")
    return p
