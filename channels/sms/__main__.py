"""``python -m channels.sms import FILE.csv``: see ``channels.sms.cli``."""

import sys

from channels.sms.cli import main

sys.exit(main())
