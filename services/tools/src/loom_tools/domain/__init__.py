"""The tools domain: registry, validation, audit and the executor. No transport imports."""
