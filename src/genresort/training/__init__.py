"""Offline only: data sets, fitting, evaluation and the model card. Nothing at run time imports this."""
