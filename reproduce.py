"""Regenerate the whole report: train the four models with the report's configurations, redraw every figure,
and write figures/results.md (ours beside the report's) and figures/comparison.png.

    python reproduce.py                          # one seed, the four models (what `make reproduce` runs)
    python reproduce.py --seeds 3                # every model with seeds 0, 1, 2: mean ± std, seed-noise check
    python reproduce.py --models cnn_numpy,cnn_torch
    python reproduce.py --quick                  # smoke run on 2,000 images, into runs/quick/ (see --help)
    python reproduce.py --eval-only              # re-evaluate the saved checkpoints, no training; seeds
                                                 # without a checkpoint keep their recorded rows
    python reproduce.py --findings               # the report's Discussion checked: extra runs, 3 seeds, about
                                                 # 40 min; uses the main runs on disk (run --seeds 3 first)
    python reproduce.py --seeds 8 --reuse        # after --seeds 3: checks seeds 0-2 by their first epoch,
                                                 # trains seeds 3-7
    python reproduce.py --original [DIR]         # the original report's own weights and logs beside the kit's

Every run is trained, unless --reuse: then a run already on disk is reused when its configuration and seed
match and either this machine trained (or checked) it with today's code, or its first epoch, trained again here,
matches bit for bit (reproduction/reuse.py); anything else is trained again, never mixed. One line per run says
which, and why. --findings reuses the runs on disk that way (its extra runs and the main ones).

Each model trains in its own process (a crash loses only that model; the NumPy runs never load torch), its
output is streamed here with the model's name in front, and kept as train.log next to its figures (eval.log for
--eval-only: an evaluation never replaces the log of the training that made the weights). Seed 0 writes
figures/<model>/ and checkpoints/<model>.*; seed k > 0 writes figures/seeds/seed<k>/<model>/ and
checkpoints/seed<k>/<model>.*. The work is done by the reproduction/ package: experiments.py is the table of
every configuration, runs.py makes or reuses the runs, results.py, findings.py and procedure.py write the pages.
"""

import sys

from reproduction.main import main

if __name__ == "__main__":
    sys.exit(main())
