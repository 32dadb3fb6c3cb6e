import sys

from unfold_rnn_command import main

sys.exit(main())
