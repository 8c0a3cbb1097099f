"""The `localentropy` command line: parses, validates, shows progress and calls the packages."""
