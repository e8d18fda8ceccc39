"""Test-session settings: one intra-op thread per pytest-xdist worker.

The suite runs two workers on two cores; tiny float64 tensors gain nothing from intra-op
threads, and oversubscribed OpenMP regions cost milliseconds per operation.
"""

import torch

torch.set_num_threads(1)
