"""swarmd: a container orchestrator in the spirit of Docker Swarm mode."""

__version__ = "0.1.0"
