"""Azure emulator: Entra ID, ARM Microsoft.ContainerRegistry and the ACR data plane over HTTPS."""

from sandbox.azure.config import Knobs, SeedConfig, default_repositories
from sandbox.azure.faults import FaultRule
from sandbox.azure.lro import LroOutcome
from sandbox.azure.server import AzureSandbox, start_azure_sandbox

__all__ = [
    "AzureSandbox",
    "FaultRule",
    "Knobs",
    "LroOutcome",
    "SeedConfig",
    "default_repositories",
    "start_azure_sandbox",
]
