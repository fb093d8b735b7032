import sys

from otf_spin.cli import main

sys.exit(main())
