"""Heads on frozen embeddings: the torch model, losses and trainer (:mod:`.model`, :mod:`.losses`,
:mod:`.train`), and the torch-free parts the Kaggle side uses (:mod:`.card`, :mod:`.runner`)."""
