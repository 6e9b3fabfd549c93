"""The command line's commands, by what they work on; hsviewer.cli parses and dispatches to them."""
