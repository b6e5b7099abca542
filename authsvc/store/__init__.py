"""Shared state across replicas: the store of single-use message signatures."""
