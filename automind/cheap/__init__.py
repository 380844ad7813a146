"""Cheap forward model: tabulated local equilibria (docs/cheap.md).

A table of one AdEx neuron's stationary rate over dimensionless inputs (built once by
compiled Brian2 runs), populations coupled through it, and a solver that predicts a
simulator's early-stop status, rates and regime for a batch of θ without simulating.
Entry point: :class:`automind.cheap.screen.CheapModel`.
"""
