"""Run the command-line interface as ``python -m chatbot``."""

from chatbot.cli import main

raise SystemExit(main())
