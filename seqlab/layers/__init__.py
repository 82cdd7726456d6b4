"""seqlab's Keras layers: recurrent cells and stacks, attention and Transformer
blocks, positions, batch norm, convolution / residual / U-Net blocks, regularisation."""

from seqlab.layers.additive_attention import BahdanauAttention
from seqlab.layers.attention import MultiHeadAttention, scaled_dot_product_attention
from seqlab.layers.attention_decoder import AttentionDecoder
from seqlab.layers.batch_norm import BatchNorm
from seqlab.layers.broadcast import BroadcastConcat
from seqlab.layers.cells import (
    GRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    PeepholeLSTMCell,
    RecurrentCell,
    SimpleRNNCell,
)
from seqlab.layers.class_token import ClassToken, FirstToken
from seqlab.layers.conv import ConvBlock
from seqlab.layers.encoding import OneHot
from seqlab.layers.normalization import LayerNorm
from seqlab.layers.pooling import LastTimeStep, MaskedGlobalMaxPooling1D, MaskedMeanPooling
from seqlab.layers.position import (
    LearnedPositionEmbedding,
    RotaryEmbedding,
    SinusoidalPositionEncoding,
)
from seqlab.layers.recurrent import Recurrent
from seqlab.layers.registry import CELLS, get_cell
from seqlab.layers.regularization import LockedDropout, OutputBias
from seqlab.layers.residual import BasicResidualBlock, BottleneckResidualBlock
from seqlab.layers.stacks import recurrent_layer, recurrent_stack, split_cell_spec
from seqlab.layers.transformer import TransformerDecoderBlock, TransformerEncoderBlock
from seqlab.layers.unet import DoubleConv, UNetDecoderBlock

__all__ = [
    "CELLS",
    "AttentionDecoder",
    "BahdanauAttention",
    "BasicResidualBlock",
    "BatchNorm",
    "BottleneckResidualBlock",
    "BroadcastConcat",
    "ClassToken",
    "ConvBlock",
    "DoubleConv",
    "FirstToken",
    "GRUCell",
    "LSTMCell",
    "LastTimeStep",
    "LayerNorm",
    "LayerNormLSTMCell",
    "LearnedPositionEmbedding",
    "LockedDropout",
    "MaskedGlobalMaxPooling1D",
    "MaskedMeanPooling",
    "MultiHeadAttention",
    "OneHot",
    "OutputBias",
    "PeepholeLSTMCell",
    "Recurrent",
    "RecurrentCell",
    "RotaryEmbedding",
    "SimpleRNNCell",
    "SinusoidalPositionEncoding",
    "TransformerDecoderBlock",
    "TransformerEncoderBlock",
    "UNetDecoderBlock",
    "get_cell",
    "recurrent_layer",
    "recurrent_stack",
    "scaled_dot_product_attention",
    "split_cell_spec",
]
