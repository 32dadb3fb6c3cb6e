import sys

from unfold_rnn.cli import main

sys.exit(main())
