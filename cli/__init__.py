"""The `swarm` command line: thin commands that parse options, call the library and print."""
