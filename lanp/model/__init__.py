"""The torch detector: model, training, scoring."""
