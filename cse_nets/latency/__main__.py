"""``python -m cse_nets.latency``; the command line is :mod:`cse_nets.latency.cli`."""

import sys

from cse_nets.latency.cli import main

sys.exit(main())
