"""``python -m audio``: the audio command line without the rest of the project."""

import sys

from audio.cli import main

sys.exit(main())
