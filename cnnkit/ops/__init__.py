"""Reference implementations that are the lessons of the course, each tested against PyTorch.

Shapes follow PyTorch: images ``(B, C, H, W)``, conv weights ``(C_out, C_in, kH, kW)``. Each function
checks its input and raises a ``ValueError`` that names the problem and the fix.
"""
from .conv import conv2d, conv2d_naive, conv_output_size, pair
from .norm import BatchNorm2dByHand, batch_norm, batch_norm_backward
from .pool import avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d, pool_windows
from .receptive import (ReceptiveField, empirical_receptive_field, layer_geometries, receptive_field,
                         receptive_field_trace)

__all__ = ["conv2d", "conv2d_naive", "conv_output_size", "pair",
           "max_pool2d", "avg_pool2d", "global_avg_pool2d", "global_max_pool2d", "pool_windows",
           "ReceptiveField", "receptive_field", "receptive_field_trace", "layer_geometries",
           "empirical_receptive_field", "batch_norm", "batch_norm_backward", "BatchNorm2dByHand"]
