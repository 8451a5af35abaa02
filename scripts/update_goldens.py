"""Regenerate the golden capture in tests/golden/ (what the CLI and the example runs produce today).

Run it from anywhere::

    python scripts/update_goldens.py                  # every golden file
    python scripts/update_goldens.py -k order         # only the cases whose pytest id matches
    python scripts/update_goldens.py --check          # compare only, change nothing

It runs tests/test_golden.py with SAGALANG_UPDATE_GOLDENS=1 (the same as
``SAGALANG_UPDATE_GOLDENS=1 .venv/bin/pytest tests/test_golden.py``): every
captured output is written where it differs, and goldens of specs or runs that
no longer exist are removed. Review ``git diff tests/golden`` before committing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    """Run the golden test module in update (or check) mode; its exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="compare with the goldens, write nothing")
    parser.add_argument("-k", dest="keyword", help="only the cases whose pytest id matches this expression")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.check:
        env.pop("SAGALANG_UPDATE_GOLDENS", None)
    else:
        env["SAGALANG_UPDATE_GOLDENS"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_golden.py")]
    if args.keyword:
        cmd += ["-k", args.keyword]
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
