"""From trained heads and encoders to a Kaggle dataset folder: :mod:`.compile` (SavedModel encoder -> TFLite)
and :mod:`.check` (against its SavedModel), :mod:`.convert` (head -> TFLite, parity), :mod:`.layout` (the
folder), :mod:`.scan` (no secret, no local path), :mod:`.export` (the steps in order)."""
