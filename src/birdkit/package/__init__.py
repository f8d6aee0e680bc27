"""From trained heads and encoders to a Kaggle dataset folder: TFLite conversion, SavedModel compile,
the folder layout and its secret scan."""
