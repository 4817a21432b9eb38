"""Networks: the stream network (appearance and motion) and the two fusion designs.

`build_stream(backbone, output_stride, pretrained)` is the entry point; see `stream.py`.
`fold_batchnorm(model)` folds the BatchNorms into the convs for inference; see `fold.py`.
"""

from fusionseg.models.fold import fold_batchnorm
from fusionseg.models.fusion import PaperFusion, ReleaseFusion
from fusionseg.models.stream import StreamNet, build_stream

__all__ = ["PaperFusion", "ReleaseFusion", "StreamNet", "build_stream", "fold_batchnorm"]
