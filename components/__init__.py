"""Thin KFP v2 components: each wraps one ``recdistill.steps`` function.

A component only declares typed inputs and outputs, passes artifact URIs to its step and copies
the result into output metadata. Importing this package loads ``kfp`` but never TensorFlow.
"""
