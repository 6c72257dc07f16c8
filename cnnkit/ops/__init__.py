"""Reference implementations that are the lessons of the course, each tested against PyTorch.

Shapes follow PyTorch: images ``(B, C, H, W)``, conv weights ``(C_out, C_in, kH, kW)``. Each function
checks its input and raises a ``ValueError`` that names the problem and the fix.
"""
from .conv import conv2d, conv2d_naive, conv_output_size, pair

__all__ = ["conv2d", "conv2d_naive", "conv_output_size", "pair"]
