"""The pure core: the models, the decision, reconcile's plans and the executor. No I/O."""
