"""How an architecture becomes a network: blocks, the builder, and what the network costs."""

from cse_nets.load import ExportError, load_model
from cse_nets.network import CSENet, build_network
from cse_nets.profile import StageProfile, count_macs, count_parameters, profile_network

__all__ = [
    "CSENet",
    "ExportError",
    "StageProfile",
    "build_network",
    "count_macs",
    "count_parameters",
    "load_model",
    "profile_network",
]
