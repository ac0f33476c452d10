"""Modelwerk: a Kubernetes operator for reproducible training, a model registry and monitored
serving."""

__version__ = "0.1.0"
