"""`python -m tekudasai` and the `tekudasai` command.

The command's script imports `run` from here, and multiprocessing runs that script again in
every `serve` worker it spawns (as `__mp_main__`): importing the CLI (typer, rich, every
command) only when it runs keeps that out of the workers, 3.7 MB each.
"""


def run() -> None:
    from tekudasai.cli import main

    main()


if __name__ == "__main__":
    run()
