"""The Spark side: the SparkSession, preprocessing, model selection, ONNX export and parity, plots."""
