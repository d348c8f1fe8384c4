"""Raw array kernels (no autograd): the NumPy/CuPy building blocks the functional ops use."""
