"""Screenshot a report page with headless Chromium, to look at it without a desktop.

    python scripts/screenshot_report.py results/<study>/report.html [-o report.png]

Uses Debian's ``chromium`` (``apt-get install chromium``) with the flags it needs to run
as root in a container, and a throw-away profile directory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cse_nets.cli import OneLineParser, exits_on_bad_input

_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--hide-scrollbars")
_TIMEOUT_S = 120


def screenshot(page: Path, out: Path, *, width: int, height: int, browser: str) -> None:
    """Render ``page`` at ``width`` x ``height`` CSS pixels and write a PNG to ``out``."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [browser, *_FLAGS, f"--user-data-dir={profile}",
                   f"--window-size={width},{height}",
                   # Plotly draws after its inline script has run; give it time to finish.
                   "--virtual-time-budget=15000",
                   f"--screenshot={out.resolve()}", page.resolve().as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ValueError(f"chromium took over {_TIMEOUT_S} s on {page}") from None
    if done.returncode != 0 or not out.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ValueError(f"chromium failed (exit {done.returncode}): {last}")


@exits_on_bad_input
def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="report.html")
    parser.add_argument("-o", "--output", type=Path, help="PNG (default: next to the page)")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=3600)
    parser.add_argument("--chromium", default="chromium", help="browser executable")
    args = parser.parse_args(argv)
    if not args.page.is_file():
        raise ValueError(f"no such page: {args.page}")
    browser = shutil.which(args.chromium)
    if browser is None:
        raise ValueError(f"{args.chromium} not found; on Debian: apt-get install chromium")
    out = args.output or args.page.with_suffix(".png")
    out.unlink(missing_ok=True)  # so a stale picture never passes for a new one
    screenshot(args.page, out, width=args.width, height=args.height, browser=browser)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
