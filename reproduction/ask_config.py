"""Which configuration a script would record for some flags, asked without training: its own parser and
defaults (and, for PyTorch, the device "auto" picks), so that the reproduction repeats none of them.

    python -m reproduction.ask_config nn_torch '[[], ["--lr", "0.1", "--momentum", "0"]]'
    # -> [{"epochs": 20, "lr": 0.01, ...}, {"epochs": 20, "lr": 0.1, ...}] on stdout (reproduction.reuse.COMPARED keys)

reproduction/runs.py runs it in a child process: the NumPy scripts' configs never load torch into the
reproduction, and a script's notes about its flags go to stderr.
"""

import contextlib
import importlib
import json
import sys

from common.cli import parse_args, resolve_data_flags
from reproduction.reuse import COMPARED


def configs(model, flag_sets):
    """[the COMPARED part of the config ``model``'s script records] for each list of flags in ``flag_sets``."""
    script = importlib.import_module(model)
    answers = []
    for flags in flag_sets:
        args = resolve_data_flags(parse_args(script.build_parser(), flags))
        if getattr(args, "device", None) is not None:
            from common.harness_torch import select_device

            args.device = str(select_device(args.device))
        answers.append({key: getattr(args, key) for key in COMPARED if hasattr(args, key)})
    return answers


def main(argv):
    model, flag_sets = argv[0], json.loads(argv[1])
    with contextlib.redirect_stdout(sys.stderr):  # the scripts' notes about their flags
        answers = configs(model, flag_sets)
    print(json.dumps(answers))


if __name__ == "__main__":
    main(sys.argv[1:])
