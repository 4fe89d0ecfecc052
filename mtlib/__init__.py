"""mtlib: one shared BERT-family encoder, three task heads, trained jointly.

Modules, one idea each: config, data, models, surgery, train, merge, evaluate, pipelines, report, figures.
"""
__version__ = "0.1.0"
