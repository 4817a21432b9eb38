"""The few Caffe protobuf messages needed to read (and, for tests, write) a .caffemodel.

A .caffemodel is a serialized `caffe.NetParameter`. Instead of shipping caffe.proto and running
protoc, the subset of its definitions that we need is declared here with `descriptor_pb2` and
turned into message classes at import time. Field numbers and types are those of BVLC Caffe's
caffe.proto (and of the DeepLab fork the authors used), so real files parse; every field we do not
declare is skipped by the parser. Kept: layer name, type, bottoms, tops, blobs (data and both shape
conventions) and the convolution geometry; both the current `layer` (field 100) and the legacy V1
`layers` (field 2) lists.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# message name -> [(field name, number, type, label, message type or None, packed)]
_MESSAGES: dict[str, list[tuple[str, int, int, int, str | None, bool]]] = {
    "BlobShape": [("dim", 1, _F.TYPE_INT64, _REPEATED, None, True)],
    "BlobProto": [
        ("num", 1, _F.TYPE_INT32, _OPTIONAL, None, False),
        ("channels", 2, _F.TYPE_INT32, _OPTIONAL, None, False),
        ("height", 3, _F.TYPE_INT32, _OPTIONAL, None, False),
        ("width", 4, _F.TYPE_INT32, _OPTIONAL, None, False),
        ("data", 5, _F.TYPE_FLOAT, _REPEATED, None, True),
        ("shape", 7, _F.TYPE_MESSAGE, _OPTIONAL, ".caffe.BlobShape", False),
        ("double_data", 8, _F.TYPE_DOUBLE, _REPEATED, None, True),
    ],
    "ConvolutionParameter": [
        ("num_output", 1, _F.TYPE_UINT32, _OPTIONAL, None, False),
        ("bias_term", 2, _F.TYPE_BOOL, _OPTIONAL, None, False),
        ("pad", 3, _F.TYPE_UINT32, _REPEATED, None, False),
        ("kernel_size", 4, _F.TYPE_UINT32, _REPEATED, None, False),
        ("stride", 6, _F.TYPE_UINT32, _REPEATED, None, False),
        ("dilation", 18, _F.TYPE_UINT32, _REPEATED, None, False),
    ],
    "LayerParameter": [
        ("name", 1, _F.TYPE_STRING, _OPTIONAL, None, False),
        ("type", 2, _F.TYPE_STRING, _OPTIONAL, None, False),
        ("bottom", 3, _F.TYPE_STRING, _REPEATED, None, False),
        ("top", 4, _F.TYPE_STRING, _REPEATED, None, False),
        ("blobs", 7, _F.TYPE_MESSAGE, _REPEATED, ".caffe.BlobProto", False),
        ("convolution_param", 106, _F.TYPE_MESSAGE, _OPTIONAL, ".caffe.ConvolutionParameter", False),
    ],
    "V1LayerParameter": [  # legacy layout; `type` is an enum there, read as its integer value
        ("bottom", 2, _F.TYPE_STRING, _REPEATED, None, False),
        ("top", 3, _F.TYPE_STRING, _REPEATED, None, False),
        ("name", 4, _F.TYPE_STRING, _OPTIONAL, None, False),
        ("type", 5, _F.TYPE_INT32, _OPTIONAL, None, False),
        ("blobs", 6, _F.TYPE_MESSAGE, _REPEATED, ".caffe.BlobProto", False),
        ("convolution_param", 10, _F.TYPE_MESSAGE, _OPTIONAL, ".caffe.ConvolutionParameter", False),
    ],
    "NetParameter": [
        ("name", 1, _F.TYPE_STRING, _OPTIONAL, None, False),
        ("layers", 2, _F.TYPE_MESSAGE, _REPEATED, ".caffe.V1LayerParameter", False),
        ("layer", 100, _F.TYPE_MESSAGE, _REPEATED, ".caffe.LayerParameter", False),
    ],
}

# The V1 enum values of the layer types that carry weights (caffe.proto, V1LayerParameter.LayerType).
V1_LAYER_TYPES = {4: "Convolution", 14: "InnerProduct", 39: "Deconvolution"}


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="fusionseg_caffe_subset.proto", package="caffe", syntax="proto2"
    )
    for message_name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=message_name)
        for name, number, type_, label, type_name, packed in fields:
            field = message.field.add(name=name, number=number, type=type_, label=label)
            if type_name:
                field.type_name = type_name
            if packed:
                field.options.packed = True
    return proto


# A private pool, so that these definitions never clash with a real caffe_pb2 imported alongside.
_CLASSES = message_factory.GetMessages([_file_descriptor()], pool=descriptor_pool.DescriptorPool())

NetParameter = _CLASSES["caffe.NetParameter"]
LayerParameter = _CLASSES["caffe.LayerParameter"]
V1LayerParameter = _CLASSES["caffe.V1LayerParameter"]
BlobProto = _CLASSES["caffe.BlobProto"]
BlobShape = _CLASSES["caffe.BlobShape"]
ConvolutionParameter = _CLASSES["caffe.ConvolutionParameter"]
