"""mtlib: one shared BERT-family encoder, three task heads, trained jointly.

The training core, one idea a module: config, data, models, surgery, train, merge, evaluate, pipelines, notebook,
files. The report side (tables, figures, pages from finished runs) is the `report` subpackage; the core never
imports it.
"""
__version__ = "0.1.0"
