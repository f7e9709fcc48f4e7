"""The local engine core: sequences, waiting queue, scheduler and the async step loop.

Imports no transport and no model library: a `ModelRunner` (backends/) executes the batches.
"""
