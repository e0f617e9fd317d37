"""Soft labels: run an exported teacher over the training table with Apache Beam.

``generate_soft_labels`` (job.py) wires the named Beam transforms of transforms.py: it reads
the student's training data, runs the teacher (handlers.py, a Beam ModelHandler) on large
columnar batches and writes the same rows, in the same format, with one soft-label column per
kd block, plus ``stats.json`` (stats.py).
"""
