"""The paper's tables and figures as grids pifi prints, runs and renders (``pifi paper``).

- :mod:`.names`: the paper's SLMs, LLMs and tasks (Hub ids, kinds); :mod:`.stand_ins`: local stand-ins for them;
- :mod:`.grid`: a table as data (arms × tasks × SLMs × layers × seeds) and its expansion into runs;
- :mod:`.tables`: every table (1–20) and figure (2, 3); :mod:`.numbers` + ``numbers.csv``: the paper's numbers;
- :mod:`.execute`: extraction and one seed's job (resume); :mod:`.launch`: serial, local workers, Slurm;
- :mod:`.render`: the table beside the paper's numbers; :mod:`.reproduce`: what ``pifi paper`` calls.

Torch-free to import.
"""

from __future__ import annotations

from .grid import SCALES, Arm, Run, Scale, Table, plan
from .launch import LAUNCHERS, SlurmOptions
from .reproduce import (GridOutcome, Status, commands, default_output_dir, get_table, grid, render, run_grid,
                        status)
from .stand_ins import StandIns, parse_stand_ins
from .tables import TABLES, table_keys

__all__ = ["LAUNCHERS", "SCALES", "TABLES", "Arm", "GridOutcome", "Run", "Scale", "SlurmOptions", "StandIns", "Status",
           "Table", "commands", "default_output_dir", "get_table", "grid", "parse_stand_ins", "plan", "render",
           "run_grid", "status", "table_keys"]
