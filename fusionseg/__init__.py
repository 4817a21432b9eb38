"""FusionSeg companion: an executable reproduction of Jain, Xiong & Grauman (CVPR 2017).

The library holds what the book's notebooks share: dataset readers (`fusionseg.data`), metrics,
optical flow, baselines, networks (`fusionseg.models`), training, inference and pseudo-labels.
"""

import os

__version__ = "0.1.0"

# OpenMP threads that spin while waiting steal the CPU from data-loading workers and other
# processes: with the default policy a Lite0 forward ran 30x slower (0.27 vs 8.2 frames/s) on the
# shared 2-core machine (results/bench/). Takes effect when fusionseg is imported before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
