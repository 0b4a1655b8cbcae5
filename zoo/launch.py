"""The environment torchrun gives the processes it starts (RANK, WORLD_SIZE, LOCAL_RANK ...), read in
one place and checked: a stray or malformed part of it is one error, not a failure deep in
torch.distributed. No torch here: the command line reads it before anything else."""

from __future__ import annotations

import os

from zoo.errors import ZooError

LAUNCH = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


def launched_by_torchrun() -> bool:
    """Whether torchrun started this process; ZooError for a stray or malformed part of its environment
    (WORLD_SIZE left set in a shell, a rank that is not a number, no MASTER_ADDR to meet at)."""
    given = {name: os.environ[name] for name in LAUNCH if name in os.environ}
    bad = [f"{name}={value[:20]!r}" for name, value in given.items() if not value.isdigit()]
    if bad:
        raise ZooError(f"{', '.join(bad)} in the environment is not a number: torchrun (zoo build --nproc N) sets "
                       f"{', '.join(LAUNCH)}; unset them to run in one process")
    if world() <= 1:
        return False
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing or int(given["RANK"]) >= world():
        said = f"{', '.join(missing)} not set" if missing else f"RANK={given['RANK']} not below WORLD_SIZE"
        raise ZooError(f"WORLD_SIZE={given['WORLD_SIZE']} is set but {said}: this is no torchrun process. Run zoo "
                       "build --nproc N for several processes, or unset WORLD_SIZE and RANK to run in one")
    return True


def world() -> int:
    """WORLD_SIZE as torchrun sets it; 1 without it (or when it is not a number)."""
    text = os.environ.get("WORLD_SIZE", "1")
    return int(text) if text.isdigit() else 1
