"""Face detection and expression classification: engines, model files, the model registry."""
