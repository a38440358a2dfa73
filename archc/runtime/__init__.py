"""Running built models: inputs, onnxruntime and torch execution, and torch-vs-ORT verification."""
