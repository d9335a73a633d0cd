"""Training, evaluation and ONNX export of Vitrine's text and image towers."""
