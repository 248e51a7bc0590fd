"""swarmctl: the command-line client of swarmd."""
