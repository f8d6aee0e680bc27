"""Heads on frozen embeddings: the torch model, losses, the loop on arrays and the store-level trainer
(:mod:`.model`, :mod:`.losses`, :mod:`.fit`, :mod:`.train`), and the torch-free parts the Kaggle side uses
(:mod:`.card`, :mod:`.runner`)."""
