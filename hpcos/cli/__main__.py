"""``python -m hpcos.cli``: the same as the ``hpcos`` command."""

import sys

from hpcos.cli import main

sys.exit(main())
