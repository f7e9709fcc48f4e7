"""The model router: model name -> backend, with concurrency limits and fallbacks."""
