"""`python -m swarmctl`: the same entry point as the `swarmctl` console script."""

from swarmctl.cli import main

if __name__ == "__main__":
    main()
