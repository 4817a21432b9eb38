"""FusionSeg companion: an executable reproduction of Jain, Xiong & Grauman (CVPR 2017).

The library holds what the book's notebooks share: dataset readers (`fusionseg.data`), metrics,
optical flow, baselines, networks (`fusionseg.models`), training, inference and pseudo-labels.
"""

__version__ = "0.1.0"
