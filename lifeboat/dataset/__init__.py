"""The dataset: its schema and the feature encoding that training and serving share."""
